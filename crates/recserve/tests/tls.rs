//! `serve --tls-cert --tls-key`: both or neither (the error names the missing flag), start-up
//! errors naming the file, HTTPS on the HTTP port, and a new certificate served after SIGHUP
//! without a restart.

use super::recserve;
use rcgen::{CertificateParams, DnType, KeyPair};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn serve_args(data: &Path) -> Vec<String> {
    let mut args: Vec<String> =
        ["serve", "--http-port", "0", "--grpc-port", "0", "--repository-poll-secs", "0", "--data-dir"]
            .map(String::from)
            .into();
    args.push(data.display().to_string());
    args.push("--model-repository".into());
    args.push(recserve_testkit::fixture_models().display().to_string());
    args
}

/// A self-signed certificate for localhost named `cn`: (certificate PEM, key PEM, DER).
fn self_signed(cn: &str) -> (String, String, Vec<u8>) {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

#[test]
fn tls_needs_both_files_and_names_what_is_wrong() {
    let data = tempfile::tempdir().unwrap();
    let cert = data.path().join("cert.pem");
    let out = recserve().args(serve_args(data.path())).arg("--tls-cert").arg(&cert).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--tls-key is missing"), "{err}");

    let out =
        recserve().args(serve_args(data.path())).env("RECSERVE_TLS_KEY", data.path().join("key.pem")).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success() && err.contains("--tls-cert is missing"), "{err}");

    let out = recserve()
        .args(serve_args(data.path()))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(data.path().join("key.pem"))
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("cannot read certificate file {}", cert.display())), "{err}");
}

#[tokio::test]
async fn https_from_the_config_file_and_a_new_certificate_on_sighup() {
    let data = tempfile::tempdir().unwrap();
    let (cert, key) = (data.path().join("cert.pem"), data.path().join("key.pem"));
    let (cert_pem, key_pem, first) = self_signed("recserve one");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &key_pem).unwrap();
    let config = data.path().join("recserve.toml");
    std::fs::write(&config, format!("tls_cert = {:?}\ntls_key = {:?}\n", cert, key)).unwrap();
    let mut child = recserve()
        .args(serve_args(data.path()))
        .arg("--config")
        .arg(&config)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("the server prints its address");
        if let Some(rest) = line.strip_prefix("recserve: HTTPS on https://") {
            break rest.split_whitespace().next().unwrap().parse::<std::net::SocketAddr>().unwrap();
        }
    };
    // Trusts whichever certificate is served, to read it; the first one is also checked as a root.
    let client = |root: &str| {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(root.as_bytes()).unwrap()])
            .tls_info(true)
            .resolve("localhost", addr)
            .build()
            .unwrap()
    };
    let url = format!("https://localhost:{}/v2/health/live", addr.port());
    let served = |res: &reqwest::Response| {
        res.extensions().get::<reqwest::tls::TlsInfo>().and_then(|i| i.peer_certificate()).map(<[u8]>::to_vec)
    };
    let res = client(&cert_pem).get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(served(&res), Some(first));

    let (cert_pem2, key_pem2, second) = self_signed("recserve two");
    std::fs::write(&key, &key_pem2).unwrap();
    std::fs::write(&cert, &cert_pem2).unwrap();
    let hup = std::process::Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(res) = client(&cert_pem2).get(&url).send().await
            && served(&res).as_ref() == Some(&second)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate is not served after SIGHUP");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(child.try_wait().unwrap().is_none(), "still the same process");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}
