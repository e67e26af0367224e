//! Starting a command without `/bin/sh` when the shell would change nothing observable.
//!
//! `/bin/sh -c 'date +%s%N'` costs a second process start (a dynamic loader run, which is most of
//! the cost on a virtual machine) for nothing: dash would only split the words, find `date` in
//! `PATH` and exec it. So a command is started directly only when all of these hold, and
//! otherwise goes to the shell as before:
//!
//! - `/bin/sh` is dash, whose behaviour is copied here (bash as `sh` exports other variables);
//! - the command is a plain list of words: letters, digits and `-_./:,+%@=` only, separated by
//!   spaces or tabs; no quotes, variables, globs, redirections, operators, comments,
//!   backslashes, tildes, braces or newlines; no `=` in the first word (an assignment);
//! - the first word is not a builtin or keyword of dash or bash (`echo` and `printf` differ
//!   between dash and coreutils; `cd`, `exit`, `kill`... are not programs at all);
//! - it resolves, through the `PATH` the command would see, to a regular executable file, the
//!   first one dash would find; a `PATH` with an empty or relative entry, or no `PATH`, goes to
//!   the shell. A command that is not found goes to the shell too, so its message and status
//!   (127, 126) are the shell's.
//!
//! The environment is what dash hands its command: variables with names that are not shell names
//! are dropped, `PWD` is the working directory (kept as given if it names the same directory),
//! and `IFS`, `OPTIND` and `PPID`, if present, get the values dash gives them. The process group,
//! working directory, stdin, niceness, timeout and exit status are the runner's, as for the shell.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Builtins and keywords of dash (`src/builtins.def.in`, `src/mktokens`) and of bash in POSIX
/// mode: a command starting with one of these always goes to the shell.
const SHELL_WORDS: &[&str] = &[
    // dash builtins
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "break",
    "cd",
    "chdir",
    "command",
    "continue",
    "echo",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "jobs",
    "kill",
    "local",
    "printf",
    "pwd",
    "read",
    "readonly",
    "return",
    "set",
    "shift",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
    // dash keywords
    "!",
    "case",
    "do",
    "done",
    "elif",
    "else",
    "esac",
    "fi",
    "for",
    "if",
    "in",
    "then",
    "until",
    "while",
    "{",
    "}",
    // bash's own, in case /bin/sh changes under a running daemon
    "[[",
    "]]",
    "bind",
    "builtin",
    "caller",
    "compgen",
    "complete",
    "compopt",
    "coproc",
    "declare",
    "dirs",
    "disown",
    "enable",
    "function",
    "help",
    "history",
    "let",
    "logout",
    "mapfile",
    "popd",
    "pushd",
    "readarray",
    "select",
    "shopt",
    "source",
    "suspend",
    "time",
    "typeset",
];

/// Characters a plain word may hold: none of them means anything to the shell inside a word.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-_./:,+%@=".contains(&byte)
}

/// Direct starts are on unless `--no-direct-exec` turned them off.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns direct starts on or off for the whole process (`--no-direct-exec`).
pub fn set_direct_exec(enabled: bool) {
    ENABLED.store(enabled, Ordering::Release);
}

pub(super) fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire) && shell_is_dash()
}

/// Whether `/bin/sh` is dash: only dash's behaviour is copied here.
fn shell_is_dash() -> bool {
    static DASH: OnceLock<bool> = OnceLock::new();
    *DASH.get_or_init(|| {
        std::fs::canonicalize("/bin/sh").is_ok_and(|shell| shell.file_name().is_some_and(|name| name.as_bytes().starts_with(b"dash")))
    })
}

/// A command the shell would only have exec'd: what to start instead, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectStart {
    pub program: PathBuf,
    /// As the shell passes it: the word as written.
    pub argv0: String,
    pub args: Vec<String>,
    /// The whole environment, as dash would hand it over.
    pub environment: BTreeMap<OsString, OsString>,
}

/// How `command` starts without a shell, with `overlay` set on top of the daemon's environment in
/// `working_directory`; `None` if only the shell can run it as the shell would.
pub fn plan(command: &str, overlay: &[(String, String)], working_directory: &Path) -> Option<DirectStart> {
    let words = plain_words(command)?;
    let mut environment: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
    environment.extend(overlay.iter().map(|(name, value)| (OsString::from(name), OsString::from(value))));
    let program = resolve(words[0], environment.get(OsStr::new("PATH"))?, working_directory)?;
    as_dash_exports(&mut environment, working_directory);
    Some(DirectStart {
        program,
        argv0: words[0].to_string(),
        args: words[1..].iter().map(|word| (*word).to_string()).collect(),
        environment,
    })
}

/// The words of a command that is a plain list of words whose first is not the shell's own.
fn plain_words(command: &str) -> Option<Vec<&str>> {
    let words: Vec<&str> = command.split([' ', '\t']).filter(|word| !word.is_empty()).collect();
    let first = *words.first()?;
    let plain = words.iter().all(|word| word.bytes().all(is_plain));
    (plain && !first.contains('=') && !SHELL_WORDS.contains(&first)).then_some(words)
}

/// The file dash would exec for `word`: `PATH` is searched unless the word holds a slash.
fn resolve(word: &str, path: &OsStr, working_directory: &Path) -> Option<PathBuf> {
    if word.contains('/') {
        let program = working_directory.join(word);
        return is_executable_file(&program).then_some(program);
    }
    for dir in path.as_bytes().split(|byte| *byte == b':') {
        let dir = Path::new(OsStr::from_bytes(dir));
        if !dir.is_absolute() {
            // An empty or relative entry is searched relative to the working directory; rare
            // enough to leave to the shell.
            return None;
        }
        let candidate = dir.join(word);
        match std::fs::metadata(&candidate) {
            Ok(metadata) if metadata.is_file() => return is_executable_file(&candidate).then_some(candidate),
            // dash passes over what is not a regular file and what does not exist.
            _ => continue,
        }
    }
    None
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file()) && nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// What dash does to the environment before it execs a command (dash 0.5.12, measured).
fn as_dash_exports(environment: &mut BTreeMap<OsString, OsString>, working_directory: &Path) {
    environment.retain(|name, _| is_shell_name(name.as_bytes()));
    let given_pwd = environment.get(OsStr::new("PWD")).map(PathBuf::from);
    let pwd = match given_pwd {
        Some(given) if given.is_absolute() && same_file(&given, working_directory) => given,
        _ => std::fs::canonicalize(working_directory).unwrap_or_else(|_| working_directory.to_path_buf()),
    };
    environment.insert("PWD".into(), pwd.into_os_string());
    for (name, value) in [("IFS", OsString::from(" \t\n")), ("OPTIND", "1".into()), ("PPID", std::process::id().to_string().into())] {
        if let Some(present) = environment.get_mut(OsStr::new(name)) {
            *present = value;
        }
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: dash drops other names from the environment it passes on.
fn is_shell_name(name: &[u8]) -> bool {
    name.first().is_some_and(|first| first.is_ascii_alphabetic() || *first == b'_')
        && name.iter().all(|byte| byte.is_ascii_alphanumeric() || *byte == b'_')
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_words_qualify() {
        assert_eq!(plain_words("date +%s%N"), Some(vec!["date", "+%s%N"]));
        assert_eq!(plain_words("  df\t-P  /var/lib "), Some(vec!["df", "-P", "/var/lib"]));
        assert_eq!(
            plain_words("curl -s --max-time=3 http://localhost:9100/metrics"),
            Some(vec!["curl", "-s", "--max-time=3", "http://localhost:9100/metrics"])
        );
        for shell in [
            "echo 1",
            "printf 1",
            "test -f x",
            "[ -f x ]",
            "true",
            "kill -0 1",
            "pwd",
            "cd /tmp",
            "exit 3",
            "if",
            "!",
            "time ls",
            "ls *.log",
            "ls ?",
            "ls [ab]",
            "cat 'a b'",
            "cat \"a\"",
            "echo $HOME",
            "ls ~",
            "ls ~/x",
            "ls {a,b}",
            "ls > x",
            "ls < x",
            "ls | wc",
            "ls && ls",
            "ls; ls",
            "ls & ",
            "ls # c",
            "ls\nls",
            "ls \\x",
            "A=1 ls",
            "ls `id`",
            "ls $(id)",
            "ls (x)",
            "ls !x",
            "ls ^x",
            "",
            "   ",
        ] {
            assert_eq!(plain_words(shell), None, "{shell:?} must go to the shell");
        }
    }

    #[test]
    fn path_is_searched_as_dash_does() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("first"), dir.path().join("second"));
        for bin in [&first, &second] {
            std::fs::create_dir(bin).unwrap();
        }
        // A directory of the name is passed over; a non-executable file stops the search (the shell decides).
        std::fs::create_dir(first.join("tool")).unwrap();
        std::fs::write(second.join("tool"), "#!/bin/sh\n").unwrap();
        let path = OsString::from(format!("{}:{}", first.display(), second.display()));
        assert_eq!(resolve("tool", &path, dir.path()), None, "not executable");
        std::fs::set_permissions(second.join("tool"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        assert_eq!(resolve("tool", &path, dir.path()), Some(second.join("tool")));
        assert_eq!(resolve("missing", &path, dir.path()), None);
        assert_eq!(resolve("tool", OsStr::new(":/usr/bin"), dir.path()), None, "an empty entry is the shell's business");
        assert_eq!(resolve("second/tool", OsStr::new("/nowhere"), dir.path()), Some(dir.path().join("second/tool")));
    }

    #[test]
    fn the_environment_is_what_dash_exports() {
        let dir = tempfile::tempdir().unwrap();
        let mut environment: BTreeMap<OsString, OsString> =
            [("A-B", "1"), ("1X", "2"), ("GOOD_1", "3"), ("IFS", ":"), ("PWD", "/nonexistent")]
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
        as_dash_exports(&mut environment, dir.path());
        let names: Vec<&str> = environment.keys().map(|name| name.to_str().unwrap()).collect();
        assert_eq!(names, ["GOOD_1", "IFS", "PWD"]);
        assert_eq!(environment[OsStr::new("IFS")], " \t\n");
        assert_eq!(PathBuf::from(&environment[OsStr::new("PWD")]), std::fs::canonicalize(dir.path()).unwrap());
    }
}
