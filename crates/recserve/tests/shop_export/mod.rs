//! `recserve shop export` through the built binary: files, summary line, flags as environment
//! variables, and bad input.

use super::recserve;

const FILES: [&str; 4] = ["items.csv", "users.csv", "interactions.csv", "meta.json"];

#[test]
fn exports_the_format_files_and_flags_and_environment_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let by_flags = dir.path().join("flags");
    let out = recserve()
        .args(["shop", "export", "--items", "300", "--users", "200", "--sessions", "120", "--seed", "9", "--out"])
        .arg(&by_flags)
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    let summary = err.lines().last().unwrap();
    assert!(
        summary.contains("300 items") && summary.contains("200 users") && summary.contains("120 sessions"),
        "{err}"
    );
    assert!(summary.contains("CTR") && summary.contains(&by_flags.display().to_string()), "{err}");

    let by_env = dir.path().join("env");
    let out = recserve()
        .args(["shop", "export"])
        .env("RECSERVE_SHOP_OUT", &by_env)
        .env("RECSERVE_SHOP_ITEMS", "300")
        .env("RECSERVE_SHOP_USERS", "200")
        .env("RECSERVE_SHOP_SESSIONS", "120")
        .env("RECSERVE_SHOP_SEED", "9")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in FILES {
        let a = std::fs::read(by_flags.join(f)).unwrap();
        assert!(!a.is_empty(), "{f}");
        assert!(a == std::fs::read(by_env.join(f)).unwrap(), "{f} differs");
    }
    let items = std::fs::read_to_string(by_flags.join("items.csv")).unwrap();
    assert_eq!(items.lines().count(), 301);
    assert!(items.starts_with("item_id,title,category,subcategory,category_path,brand,price,stock,popularity\n"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(by_flags.join("meta.json")).unwrap()).unwrap();
    assert_eq!(
        (meta["seed"].as_u64(), meta["items"].as_u64(), meta["sessions"].as_u64()),
        (Some(9), Some(300), Some(120))
    );
}

#[test]
fn help_lists_every_flag_with_its_environment_variable() {
    let out = recserve().args(["shop", "export", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--out", "--items", "--users", "--seed", "--sessions"] {
        assert!(help.contains(flag), "shop export --help lacks {flag}:\n{help}");
        let env = format!("RECSERVE_SHOP_{}", flag.trim_start_matches('-').to_uppercase());
        assert!(help.contains(&env), "shop export --help lacks {env}:\n{help}");
    }
    assert!(help.contains("[default: 5000]") && help.contains("[default: 10000]"), "{help}");
}

#[test]
fn bad_sizes_and_unwritable_destinations_fail_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = recserve().args(["shop", "export", "--items", "0", "--out"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("items") && err.contains("got 0"), "{err}");

    let out = recserve().args(["shop", "export", "--sessions", "0", "--out"]).arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("sessions"));

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = recserve()
        .args(["shop", "export", "--items", "20", "--users", "10", "--sessions", "2", "--out"])
        .arg(file.join("sub"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("a-file/sub") && err.contains("Not a directory"), "{err}");

    let out = recserve().args(["shop", "export"]).env_remove("RECSERVE_SHOP_OUT").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("--out"));
}
