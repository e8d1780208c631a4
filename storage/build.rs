// `sqlx::migrate!` embeds the migrations when this crate compiles; a new migration file changes no Rust source, so
// without this a build could keep the old list. (What `sqlx migrate build-script` writes.)
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
