//! Every manifest the project ships or was seeded with converts cleanly.

use bootes_envoy::convert::convert;

fn manifest_dirs() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    [
        root.join("../shared/seed-examples"),
        root.join("manifests/examples"),
    ]
    .into_iter()
    .filter(|d| d.is_dir())
    .collect()
}

#[test]
fn every_example_manifest_is_valid() {
    use bootes_core::manifest::{parse_stream, Document};
    let mut objects = 0;
    for dir in manifest_dirs() {
        for file in bootes_core::validate::manifest_files(&dir).unwrap() {
            let text = std::fs::read_to_string(&file).unwrap();
            for doc in parse_stream(&file.display().to_string(), &text) {
                match doc.unwrap_or_else(|e| panic!("{e}")) {
                    Document::Object(o) => {
                        objects += 1;
                        let c = convert(o.key.kind, &o.config)
                            .unwrap_or_else(|e| panic!("{}: {}: {e:?}", file.display(), o.key));
                        assert_eq!(
                            Some(c.name.as_str()),
                            o.config[o.key.kind.name_field()].as_str()
                        );
                    }
                    Document::Pod(_) | Document::EndpointSlice(_) | Document::Other { .. } => {}
                }
            }
        }
    }
    assert!(
        objects >= 5,
        "the seed examples alone have 5 objects, found {objects}"
    );
}
