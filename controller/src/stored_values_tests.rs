//! One verdict on every damaged value, whoever reads it: the controller's
//! readers of the prefix (the etcd writer's load, the node-status watcher,
//! `inspect`) against the table of `bootes_proto::values::damaged`, which
//! the xds-server's reader (`bootes_xds::snapshots`) is tested against too.

use std::sync::Arc;

use bootes_proto::values::damaged;
use bootes_proto::{Key, Keys};

use crate::etcd_writer::Sealer;
use crate::inspect::Store;
use crate::source::node_status;

#[test]
fn every_reader_gives_every_damaged_value_the_same_verdict() {
    let keys = Keys::default();
    let secrets = Arc::new(damaged::secret_keys());
    let sealer = Sealer {
        keys: keys.clone(),
        secrets: Some(secrets.clone()),
    };
    for case in damaged::cases(&keys) {
        let verdict = case.verdict.to_string();
        let mut readers = 0;

        // inspect reads every key.
        let store = Store::decode(&keys, [(&case.key, &case.value)], Some(&secrets));
        assert_eq!(
            store.errors.get(&case.key),
            Some(&verdict),
            "inspect, {}",
            case.what
        );
        readers += 1;

        match keys.parse(&case.key) {
            Some(Key::Node(_) | Key::Snapshot(_)) => {
                let (_, loaded) = sealer.loaded(&case.key, case.value.clone());
                assert_eq!(
                    loaded.map_err(|e| e.to_string()),
                    Err(verdict.clone()),
                    "etcd writer, {}",
                    case.what
                );
                readers += 1;
            }
            Some(Key::Status { node, replica }) => {
                let read = node_status::read(node, replica, &case.value);
                assert_eq!(
                    read.map_err(|e| e.to_string()),
                    Err(verdict.clone()),
                    "node status watcher, {}",
                    case.what
                );
                readers += 1;
            }
            _ => panic!("{}: {} is not a key readers check", case.what, case.key),
        }
        assert_eq!(readers, 2, "{}", case.what);
    }
}
