use covenant::api;

fn main() {
    for crd in api::crds() {
        print!("---\n{}", serde_yaml::to_string(&crd).unwrap_or_default());
    }
}
