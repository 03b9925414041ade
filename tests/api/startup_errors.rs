//! Start-up errors of the real binary: a `DATABASE_URL` that cannot be parsed, names an
//! unsupported scheme, points at nothing, or names a database or role that does not exist.
//! Each ends the process with a non-zero status and one meaningful line on stderr, and nothing
//! it prints (stdout or stderr) carries the password or any other part of the URL's userinfo.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::postgres_admin_url;

struct Run {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `database_url` in a clean environment (empty working directory, no
/// config file, no Toss, no NATS) and `RUST_BACKTRACE=1`, which must not bring back a stack
/// trace. Killed after 30 s.
fn run_with(database_url: &str) -> Run {
    run_env(&[
        ("DATABASE_URL", database_url),
        ("API_KEYS", "startup-test-key"),
    ])
}

/// The binary started in a new empty working directory (returned, for the caller to remove), with
/// no variables but `BIND_ADDR` (any port), `defaults`, then `vars`; stdout and stderr piped.
fn start_binary(
    defaults: &[(&str, &str)],
    vars: &[(&str, &str)],
) -> (std::path::PathBuf, std::process::Child) {
    let dir = std::env::temp_dir().join(format!("ps_start_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_payment-service"))
        .current_dir(&dir)
        .env_clear()
        .env("BIND_ADDR", "127.0.0.1:0")
        .envs(defaults.iter().copied())
        .envs(vars.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    (dir, child)
}

/// The binary, as `run_with` runs it, with the variables `vars` only.
fn run_env(vars: &[(&str, &str)]) -> Run {
    let label = format!("{vars:?}");
    let defaults = [
        ("APP_DATABASE__ACQUIRE_TIMEOUT_SECS", "2"),
        ("RUST_BACKTRACE", "1"),
    ];
    let (dir, mut child) = start_binary(&defaults, vars);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            panic!("{label}: still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Run {
        status,
        stdout,
        stderr,
    }
}

/// Non-zero exit, exactly one line on stderr that says `expected`, no panic or stack trace, and
/// none of `secrets` printed anywhere.
fn assert_refused(database_url: &str, expected: &[&str], secrets: &[&str]) {
    let run = run_with(database_url);
    assert_one_line(
        &run,
        &format!("DATABASE_URL={database_url}"),
        expected,
        secrets,
    );
}

/// `run` ended non-zero with exactly one line on stderr that says `expected`, no panic or
/// stack trace, and none of `secrets` printed anywhere.
fn assert_one_line(run: &Run, label: &str, expected: &[&str], secrets: &[&str]) {
    let context = format!(
        "{label}\nstatus: {:?}\nstdout:\n{}\nstderr:\n{}",
        run.status, run.stdout, run.stderr
    );
    assert!(
        run.status.code().is_some_and(|code| code != 0),
        "expected a non-zero exit status\n{context}"
    );
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr\n{context}");
    let line = lines[0];
    assert!(
        line.starts_with("payment-service: cannot start: "),
        "{context}"
    );
    for word in expected {
        assert!(
            line.contains(word),
            "expected {word:?} in the line\n{context}"
        );
    }
    for noise in ["panicked", "backtrace", "Caused by", "RUST_BACKTRACE"] {
        assert!(!run.stderr.contains(noise), "{noise:?}\n{context}");
    }
    for secret in secrets {
        assert!(
            !run.stderr.contains(secret) && !run.stdout.contains(secret),
            "{secret:?} was printed\n{context}"
        );
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn unescaped_hash_in_the_password() {
    // Before: a panic in the driver's URL parser, with a stack trace.
    assert_refused(
        "postgres://user:pa#ss@127.0.0.1:5432/db",
        &["DATABASE_URL", "not a valid URL", "%23"],
        &["pa#ss", "pa#", "#ss"],
    );
    assert_refused(
        "postgres://alice_q7:pa#ss_w0rd@127.0.0.1:5432/db",
        &["DATABASE_URL", "%23"],
        &["alice_q7", "pa#ss_w0rd", "ss_w0rd"],
    );
}

#[test]
fn reserved_characters_in_the_user_name_are_not_taken_for_the_host() {
    // `#`, `?` or `/` in the user name end the authority early; the URL then parses, with the
    // start of the user name as the host and the password in a fragment, query or path.
    for url in [
        "postgres://bob_k4#x:hunter2_pw@127.0.0.1:5432/db",
        "postgres://bob_k4?x:hunter2_pw@127.0.0.1:5432/db",
        "postgres://bob_k4/x:hunter2_pw@127.0.0.1:5432/db",
    ] {
        assert_refused(url, &["DATABASE_URL"], &["bob_k4", "hunter2_pw"]);
    }
}

#[test]
fn unparsable_url() {
    assert_refused(
        "postgres://carol_z3:s3cret_pw9@[::1",
        &["DATABASE_URL", "not a valid URL"],
        &["carol_z3", "s3cret_pw9"],
    );
    // Without `//` a URL parser takes the user name for the scheme.
    assert_refused(
        "carolz:s3cret_pw9@db.internal/payments",
        &["DATABASE_URL", "postgres://"],
        &["carolz", "s3cret_pw9"],
    );
}

#[test]
fn unsupported_scheme() {
    // Before: the driver's error quoted the whole URL, password included.
    assert_refused(
        "mysql://user:secret@host/db",
        &["unsupported scheme", "mysql"],
        &["secret", "user:"],
    );
    assert_refused(
        "mysql://dave_m1:t0p_secret_m1@db.internal:3306/payments",
        &["unsupported scheme", "mysql"],
        &["dave_m1", "t0p_secret_m1"],
    );
}

#[test]
fn connection_refused() {
    let port = closed_port();
    assert_refused(
        &format!("postgres://erin_c5:c0nn_refused_pw@127.0.0.1:{port}/payments"),
        &[&format!("127.0.0.1:{port}"), "refused"],
        &["erin_c5", "c0nn_refused_pw"],
    );
}

#[test]
fn unknown_host() {
    assert_refused(
        "postgres://frank_h6:n0_such_h0st_pw@no-such-host.invalid:5432/payments",
        &["no-such-host.invalid"],
        &["frank_h6", "n0_such_h0st_pw"],
    );
}

/// PostgreSQL (the tests' server, trust authentication): a database that does not exist, and a
/// role that does not exist, whose name the server quotes in its error.
#[test]
fn wrong_database_name_and_unknown_role() {
    let admin = url::Url::parse(&postgres_admin_url()).expect("TEST_POSTGRES_URL is a URL");
    let mut no_database = admin.clone();
    no_database.set_path(&format!("ps_no_such_db_{}", uuid::Uuid::new_v4().simple()));
    let password = admin.password().unwrap_or("w1ll_be_ign0red_pw").to_owned();
    let _ = no_database.set_password(Some(&password));
    let mut secrets = vec![password.as_str()];
    if admin.username() != "postgres" {
        // ("postgres" is also the scheme.)
        secrets.push(admin.username());
    }
    assert_refused(
        no_database.as_str(),
        &["no such database", no_database.path()],
        &secrets,
    );

    let mut no_role = admin.clone();
    let _ = no_role.set_username("grace_no_role_r8");
    let _ = no_role.set_password(Some("gr4ce_pw_r8"));
    assert_refused(
        no_role.as_str(),
        &["refused"],
        &["grace_no_role_r8", "gr4ce_pw_r8"],
    );
}

#[test]
fn sqlite_file_that_cannot_be_opened() {
    assert_refused(
        "sqlite:///ps-no-such-directory/sub/payments.db?mode=rwc",
        &["sqlite", "/ps-no-such-directory/sub/payments.db"],
        &[],
    );
}

/// A file in a fresh directory, for `API_KEYS_FILE`.
fn keys_file(text: &str) -> String {
    let path = std::env::temp_dir().join(format!(
        "ps_start_keys_{}.toml",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

const DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

#[test]
fn a_bad_api_keys_file_stops_the_start() {
    let entry = |name: &str, digest: &str, scopes: &str| {
        format!("[[api_keys]]\nname = \"{name}\"\nsha256 = \"{digest}\"\nscopes = {scopes}\n\n")
    };
    let missing = std::env::temp_dir()
        .join("ps_no_such_keys_file.toml")
        .to_string_lossy()
        .into_owned();
    for (text, expected) in [
        (
            Some(entry(
                "checkout",
                DIGEST,
                r#"["payments:read", "payment:write"]"#,
            )),
            vec![
                "API_KEYS_FILE",
                "entry 1 (\"checkout\")",
                "unknown scope \"payment:write\"",
            ],
        ),
        (
            Some(
                entry("checkout", DIGEST, r#"["payments:read"]"#)
                    + &entry("checkout", DIGEST, r#"["review"]"#),
            ),
            vec!["API_KEYS_FILE", "\"checkout\" is used by two entries"],
        ),
        (
            Some(entry("key-1", DIGEST, r#"["review"]"#)),
            vec!["API_KEYS_FILE", "\"key-1\" is used twice"],
        ),
        (
            Some(entry("checkout", &DIGEST[1..], "[]")),
            vec!["API_KEYS_FILE", "sha256 must be the 64 hex characters"],
        ),
        (
            Some(entry("checkout", &format!("{}z", &DIGEST[1..]), "[]")),
            vec!["API_KEYS_FILE", "sha256 must be the 64 hex characters"],
        ),
        (
            Some("[[api_keys]]\nname = \"x\"\nsha256 = ".to_owned()),
            vec!["API_KEYS_FILE", "not a valid [[api_keys]] file (line 3)"],
        ),
        (None, vec!["API_KEYS_FILE", "cannot be read"]),
    ] {
        let path = text.as_deref().map_or_else(|| missing.clone(), keys_file);
        let run = run_env(&[
            ("DATABASE_URL", "sqlite::memory:"),
            ("API_KEYS", "startup-test-key"),
            ("API_KEYS_FILE", &path),
        ]);
        assert_one_line(
            &run,
            &format!("API_KEYS_FILE:\n{}", text.as_deref().unwrap_or("(missing)")),
            &expected,
            &["startup-test-key"],
        );
        if text.is_some() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Everything production needs; each test takes one away.
const TOSS_SECRET: &str = "live_sk_startup_secret_value";
const ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const PRODUCTION_API_KEY: &str = "startup-production-api-key";

fn production(
    without: &str,
    overrides: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str)> {
    let mut vars = vec![
        ("APP_ENV", "production"),
        ("DATABASE_URL", "sqlite://payment-service.db?mode=rwc"),
        ("API_KEYS", PRODUCTION_API_KEY),
        ("TOSS_SECRET_KEY", TOSS_SECRET),
        ("TOSS_API_URL", "https://api.tosspayments.com"),
        ("BILLING_KEY_ENCRYPTION_KEY", ENCRYPTION_KEY),
    ];
    vars.retain(|(name, _)| *name != without);
    for (name, value) in overrides {
        vars.retain(|(existing, _)| existing != name);
        vars.push((name, value));
    }
    vars
}

#[test]
fn production_refuses_to_start_unsafe() {
    let secrets = [TOSS_SECRET, ENCRYPTION_KEY, PRODUCTION_API_KEY];
    for (vars, expected) in [
        (
            production("API_KEYS", &[]),
            vec![
                "APP_ENV=production",
                "no API key (set API_KEYS or API_KEYS_FILE)",
            ],
        ),
        (
            production("TOSS_SECRET_KEY", &[]),
            vec!["APP_ENV=production", "TOSS_SECRET_KEY is not set"],
        ),
        (
            production("BILLING_KEY_ENCRYPTION_KEY", &[]),
            vec![
                "APP_ENV=production",
                "BILLING_KEY_ENCRYPTION_KEY is not set",
            ],
        ),
        (
            production("", &[("TOSS_API_URL", "http://toss.internal:8080")]),
            vec![
                "APP_ENV=production",
                "TOSS_API_URL",
                "http:// to a host that is not loopback",
            ],
        ),
        (
            production("API_KEYS", &[("TOSS_SECRET_KEY", " ")]),
            vec!["no API key", "TOSS_SECRET_KEY is not set"],
        ),
    ] {
        let run = run_env(&vars);
        assert_one_line(&run, &format!("{vars:?}"), &expected, &secrets);
        assert!(
            !run.stdout.contains("API key (generated"),
            "nothing is generated"
        );
    }
}

/// Runs the binary with `vars` until it says it listens (then stops it); its stdout and stderr
/// up to then. Panics if it ends or is silent for 30 s.
fn run_until_listening(vars: &[(&str, &str)]) -> (String, String) {
    use std::io::BufRead;
    let (dir, mut child) = start_binary(&[("APP_LOG__FORMAT", "text")], vars);
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    let started = Instant::now();
    let listening = loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                out.push_str(&line);
                out.push('\n');
                if line.contains("payment-service is listening") {
                    // The key, if generated, is printed on the lines that follow.
                    while let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
                        out.push_str(&line);
                        out.push('\n');
                    }
                    break true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                if started.elapsed() < Duration::from_secs(30) => {}
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    let _ = std::io::BufReader::new(stderr).read_to_string(&mut err);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        listening,
        "{vars:?} did not start\nstdout:\n{out}\nstderr:\n{err}"
    );
    (out, err)
}

#[test]
fn production_with_everything_it_needs_starts_and_elsewhere_what_is_missing_is_generated() {
    let (out, err) = run_until_listening(&production("", &[]));
    assert!(!out.contains("API key (generated"), "{out}");
    for secret in [TOSS_SECRET, ENCRYPTION_KEY, PRODUCTION_API_KEY] {
        assert!(!out.contains(secret) && !err.contains(secret));
    }
    // A loopback Toss over http:// is fine (a local stand-in of Toss).
    run_until_listening(&production("", &[("TOSS_API_URL", "http://127.0.0.1:9")]));

    // Outside production: no key, no Toss, no encryption key: generated, with warnings.
    let (out, err) =
        run_until_listening(&[("DATABASE_URL", "sqlite://payment-service.db?mode=rwc")]);
    assert!(out.contains("API key (generated"), "{out}");
    let logged = format!("{out}{err}");
    assert!(
        logged.contains("BILLING_KEY_ENCRYPTION_KEY is not set"),
        "{logged}"
    );
    assert!(logged.contains("TOSS_SECRET_KEY is not set"), "{logged}");
}
