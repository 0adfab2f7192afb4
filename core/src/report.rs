//! How one problem with one object reads, in `validate` output and in the
//! `run` log alike (docs/VALIDATION.md shows examples).

use crate::model::ObjectKey;
use bootes_envoy::convert::ConfigError;

/// `SOURCE: KIND NAMESPACE/NAME: PATH: MESSAGE`, e.g.
///
/// ```text
/// clusters.yaml: Cluster foo/web: spec.config.conect_timeout: unknown field "conect_timeout" in envoy.config.cluster.v3.Cluster (did you mean "connect_timeout"?)
/// ```
///
/// `source` says where the object came from: a file name, `-` for stdin, or
/// `kubernetes`. `validate` prefixes `error: ` or `warning: `; the log gives
/// the level its own way.
pub fn problem_line(source: &str, key: &ObjectKey, err: &ConfigError) -> String {
    format!("{source}: {}", object_problem(key, err))
}

/// `KIND NAMESPACE/NAME: PATH: MESSAGE`: [`problem_line`] without the
/// source, where the object is the only one concerned (the admission
/// webhook's denials and warnings).
pub fn object_problem(key: &ObjectKey, err: &ConfigError) -> String {
    format!("{key}: {}: {}", err.path, err.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootes_proto::ResourceType;

    #[test]
    fn names_source_kind_namespace_name_path_and_problem() {
        let key = ObjectKey {
            kind: ResourceType::Cluster,
            namespace: "foo".into(),
            name: "web".into(),
        };
        let err = ConfigError::new("spec.config.connect_timeout", "bad");
        assert_eq!(
            problem_line("c.yaml", &key, &err),
            "c.yaml: Cluster foo/web: spec.config.connect_timeout: bad"
        );
    }
}
