//! Rebuild when the demo bundle (`examples/ecommerce/`, embedded with `include_dir!`) changes.
fn main() {
    println!("cargo:rerun-if-changed=../../examples/ecommerce");
}
