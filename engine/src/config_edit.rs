//! Saving the config into the user's own file (issue 19): the document is edited in place with
//! `toml_edit`, so comments, key order, formatting and hand edits survive; only the keys whose
//! value changed are touched. And a save never overwrites a file that changed on disk since it
//! was loaded (compared by a hash of the bytes), so a hand edit made while the app runs is kept.
//!
//! The keys to touch are found by comparing two serializations of the config — the one loaded
//! (from the file's bytes) and the one to save — so a default the user left out of the file is
//! not written in just because the program knows its value.

use std::path::Path;

use sha2::{Digest, Sha256};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

use crate::config::{Config, ConfigError};

/// What was on disk when the config was loaded: a hash of the file's bytes, or `None` when there
/// was no file (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedFile(Option<[u8; 32]>);

impl LoadedFile {
    fn of(bytes: Option<&[u8]>) -> LoadedFile {
        LoadedFile(bytes.map(|b| Sha256::digest(b).into()))
    }
}

fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
    }
}

/// [`Config::load`], and what the file was, for [`save_in_place`].
pub fn load(path: &Path) -> Result<(Config, LoadedFile), ConfigError> {
    let bytes = read_bytes(path)?;
    let config = match &bytes {
        Some(bytes) => Config::parse(&String::from_utf8_lossy(bytes), path)?,
        None => Config::default(),
    };
    Ok((config, LoadedFile::of(bytes.as_deref())))
}

/// Whether the file at `path` is still the one `loaded` describes.
pub fn unchanged_since(path: &Path, loaded: &LoadedFile) -> Result<bool, ConfigError> {
    Ok(LoadedFile::of(read_bytes(path)?.as_deref()) == *loaded)
}

/// Saves `config` into the file at `path`, which must still be the one `loaded` describes
/// ([`ConfigError::ChangedOnDisk`] otherwise, and nothing is written). Only the keys that differ
/// from what the file meant are written; everything else in the file stays byte for byte. With no
/// file yet, the whole config is written. Atomic and 0600, like every state file. Returns what
/// the file is now, for the next save. The caller serializes its saves (the tray's writer lock).
pub fn save_in_place(config: &Config, path: &Path, loaded: &LoadedFile) -> Result<LoadedFile, ConfigError> {
    let current = read_bytes(path)?;
    if LoadedFile::of(current.as_deref()) != *loaded {
        // Someone edited the file by hand (or another program wrote it): theirs wins.
        return Err(ConfigError::ChangedOnDisk { path: path.to_path_buf() });
    }
    let wanted = toml::to_string_pretty(config).expect("config always serializes");
    let text = match current {
        None => wanted,
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let before = Config::parse(&text, path)?;
            let before = parse(&toml::to_string_pretty(&before).expect("config always serializes"));
            let mut document = parse(&text);
            apply_changes(document.as_table_mut(), before.as_table(), parse(&wanted).as_table());
            document.to_string()
        }
    };
    crate::fsutil::write_atomic(path, text.as_bytes()).map_err(|source| ConfigError::Write { path: path.to_path_buf(), source })?;
    Ok(LoadedFile::of(Some(text.as_bytes())))
}

fn parse(text: &str) -> DocumentMut {
    text.parse().expect("a config that parsed with toml parses with toml_edit")
}

/// Brings `target` (the user's table) from `before` to `after`: keys that changed are set, keys
/// gone are removed, keys equal in both are not touched.
fn apply_changes(target: &mut Table, before: &Table, after: &Table) {
    let gone: Vec<String> = before.iter().map(|(key, _)| key.to_string()).filter(|key| !after.contains_key(key)).collect();
    for key in gone {
        target.remove(&key);
    }
    for (key, new) in after.iter() {
        let old = before.get(key);
        match (new, old, target.get_mut(key)) {
            (Item::Table(new), Some(Item::Table(old)), Some(Item::Table(mine))) => apply_changes(mine, old, new),
            (Item::ArrayOfTables(new), Some(Item::ArrayOfTables(old)), Some(Item::ArrayOfTables(mine))) => {
                apply_to_named_tables(mine, old, new)
            }
            _ if old.is_some_and(|old| same(old, new)) => {}
            (_, _, Some(Item::Value(mine))) if new.is_value() => {
                // Keep the user's spacing and comment around the value.
                let decor = mine.decor().clone();
                *mine = new.as_value().expect("checked").clone();
                *mine.decor_mut() = decor;
            }
            _ => {
                target.insert(key, new.clone());
            }
        }
    }
}

/// `[[app]]`: matched by `name`, so removing one app leaves the others' text (and comments) as
/// they were; a renamed app is its old table edited in place when the position still matches.
fn apply_to_named_tables(mine: &mut ArrayOfTables, before: &ArrayOfTables, after: &ArrayOfTables) {
    let name = |table: &Table| table.get("name").and_then(|n| n.as_str()).map(str::to_string);
    let mut result = ArrayOfTables::new();
    for (index, new) in after.iter().enumerate() {
        let position = name(new)
            .and_then(|wanted| before.iter().position(|old| name(old).as_deref() == Some(&wanted)))
            .or_else(|| (index < before.len() && before.len() == after.len()).then_some(index));
        match position.and_then(|i| Some((before.get(i)?, mine.get(i)?))) {
            Some((old, user)) => {
                let mut user = user.clone();
                apply_changes(&mut user, old, new);
                result.push(user);
            }
            None => result.push(new.clone()),
        }
    }
    *mine = result;
}

/// Equal values, whatever their formatting.
fn same(a: &Item, b: &Item) -> bool {
    let plain = |item: &Item| {
        let mut item = item.clone();
        if let Some(value) = item.as_value_mut() {
            value.decor_mut().clear();
        }
        item.to_string().trim().to_string()
    };
    plain(a) == plain(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAND_WRITTEN: &str = r#"# My SimpleOTP setup — written by hand.
issuer = "Home"   # shown in the authenticator

# The notebook first, on purpose.
[[app]]
listen = "127.0.0.1:8081"   # keep this port
upstream = "http://127.0.0.1:8888"
name = "notebook"

# Grafana
[[app]]
name = "grafana"
upstream = "http://127.0.0.1:3000"
listen = "127.0.0.1:8082"
"#;

    fn write(dir: &Path, text: &str) -> std::path::PathBuf {
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn adding_editing_and_removing_an_app_keeps_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), HAND_WRITTEN);
        let (mut config, loaded) = load(&path).unwrap();

        // Edit: only grafana's upstream changes.
        let grafana = config.apps.iter_mut().find(|a| a.name.as_str() == "grafana").unwrap();
        grafana.upstream = "http://127.0.0.1:3001".parse().unwrap();
        let loaded = save_in_place(&config, &path, &loaded).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), HAND_WRITTEN.replace("127.0.0.1:3000", "127.0.0.1:3001"));

        // Add: appended, the existing text untouched.
        let mut added = config.apps[0].clone();
        added.name = "wiki".parse().unwrap();
        added.listen = "127.0.0.1:8083".parse().unwrap();
        config.apps.push(added);
        let loaded = save_in_place(&config, &path, &loaded).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let edited = HAND_WRITTEN.replace("127.0.0.1:3000", "127.0.0.1:3001");
        assert!(text.starts_with(&edited), "{text}");
        assert!(text[edited.len()..].contains("name = \"wiki\""), "{text}");
        assert_eq!(Config::load(&path).unwrap().apps.len(), 3);

        // Remove the first: the others keep their comments and order.
        config.apps.remove(0);
        save_in_place(&config, &path, &loaded).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# My SimpleOTP setup — written by hand.\nissuer = \"Home\"   # shown in the authenticator\n"), "{text}");
        assert!(!text.contains("notebook") && !text.contains("keep this port"), "{text}");
        assert!(
            text.contains("# Grafana\n[[app]]\nname = \"grafana\"\nupstream = \"http://127.0.0.1:3001\"\nlisten = \"127.0.0.1:8082\"\n"),
            "{text}"
        );
        assert_eq!(Config::load(&path).unwrap().apps.len(), 2);
    }

    #[test]
    fn a_file_changed_since_it_was_loaded_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), HAND_WRITTEN);
        let (mut config, loaded) = load(&path).unwrap();
        let by_hand = HAND_WRITTEN.replace("\"Home\"", "\"Office\"");
        std::fs::write(&path, &by_hand).unwrap();
        config.apps.remove(1);
        let refused = save_in_place(&config, &path, &loaded).expect_err("the hand edit was overwritten");
        assert!(matches!(refused, ConfigError::ChangedOnDisk { .. }), "{refused}");
        assert!(refused.to_string().contains("changed outside SimpleOTP since it was loaded"), "{refused}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), by_hand);
    }

    #[test]
    fn a_first_save_with_no_file_writes_a_good_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let (config, loaded) = load(&path).unwrap();
        save_in_place(&config, &path, &loaded).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // A second load-and-save round trip changes nothing.
        let before = std::fs::read(&path).unwrap();
        let (config, loaded) = load(&path).unwrap();
        save_in_place(&config, &path, &loaded).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}
