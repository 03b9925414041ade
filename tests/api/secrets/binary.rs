//! The binary, its output captured to files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use base64::Engine as _;

use super::{API_KEY_ONE, API_KEY_TWO, ENCRYPTION_KEY_BYTES, TOSS_BILLING_SECRET, TOSS_SECRET};
use crate::helpers::free_port;

pub(super) struct Service {
    child: Child,
    pub(super) base: String,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        // SECRETS_KEEP_LOGS=1 keeps the captured output for a look.
        if std::env::var("SECRETS_KEEP_LOGS").is_ok() {
            eprintln!("captured output kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Service {
    pub(super) fn start(database_url: &str, toss_url: &str, log_format: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("secretscan_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let stdout = dir.join("stdout.log");
        let stderr = dir.join("stderr.log");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_payment-service"))
            // No config/<env>.toml of the working tree may change what is tested.
            .current_dir(&dir)
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("TOSS_SECRET_KEY", TOSS_SECRET)
            .env("TOSS_BILLING_SECRET_KEY", TOSS_BILLING_SECRET)
            .env(
                "BILLING_KEY_ENCRYPTION_KEY",
                base64::engine::general_purpose::STANDARD.encode(ENCRYPTION_KEY_BYTES),
            )
            .env("TOSS_API_URL", toss_url)
            .env("API_KEYS", format!("{API_KEY_ONE}, {API_KEY_TWO}"))
            .env("RUST_LOG", "trace")
            .env("APP_LOG__FORMAT", log_format)
            .env("APP_TOSS__READ_TIMEOUT_SECS", "1")
            .env("APP_TOSS__LOOKUP_TIMEOUT_SECS", "2")
            .env("APP_RECONCILER__INTERVAL_MS", "200")
            .env("APP_RECONCILER__INITIAL_BACKOFF_SECS", "0")
            .env("APP_RECONCILER__MAX_BACKOFF_SECS", "1")
            .env("APP_SERVER__SHUTDOWN_GRACE_SECS", "2")
            .env_remove("NATS_URL")
            .env_remove("APP_ENV")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("the binary starts");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stdout,
            stderr,
            _dir: TempDir(dir),
        }
    }

    pub(super) async fn wait_ready(&mut self, client: &reqwest::Client) {
        for _ in 0..150 {
            if let Ok(response) = client.get(format!("{}/ready", self.base)).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the service exited with {status}:\n{}", read(&self.stderr));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} never became ready:\n{}", self.base, read(&self.stderr));
    }

    /// SIGTERM (so the shutdown is logged too), then its output.
    pub(super) async fn stop(mut self) -> (String, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        (read(&self.stdout), read(&self.stderr))
    }
}

/// A test that fails half-way must not leave the binary running.
impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}
