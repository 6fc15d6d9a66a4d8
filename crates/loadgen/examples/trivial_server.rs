//! A trivial V2 server for measuring the load generator itself: it answers the metadata of
//! any model with one FP32 input `[-1, 16]` and every infer request with a fixed 200 body,
//! without reading the tensors.
//!
//! ```text
//! cargo run --release -p recserve-loadgen --example trivial_server -- 127.0.0.1:9000
//! ```

use axum::Router;
use axum::routing::{get, post};

const METADATA: &str = r#"{"name":"m","versions":["1"],"platform":"onnx","inputs":[{"name":"x","datatype":"FP32","shape":[-1,16]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1,1]}]}"#;
const ANSWER: &str = r#"{"model_name":"m","outputs":[{"name":"y","datatype":"FP32","shape":[1,1],"data":[0.5]}]}"#;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let json = |body: &'static str| ([("content-type", "application/json")], body);
    let app = Router::new()
        .route("/v2/models/{m}", get(move || async move { json(METADATA) }))
        .route("/v2/models/{m}/infer", post(move |_body: axum::body::Bytes| async move { json(ANSWER) }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("trivial server on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
