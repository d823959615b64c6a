//! The console's credential: one admin password, checked against the argon2id
//! hash in `[admin] password_hash` by a login form. A login gets a random session
//! id in an HttpOnly, SameSite=Strict cookie, and a per-session CSRF token that
//! every POST form carries. Wrong passwords are 401; after [`MAX_FAILURES`] from
//! one address within [`FAILURE_WINDOW`] every attempt from it is 429 until the
//! window ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

pub const COOKIE: &str = "tessera_console";
pub const MAX_FAILURES: u32 = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Session {
    pub csrf: String,
    created: Instant,
}

pub struct Sessions {
    password_hash: String,
    lifetime: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The new session's id (for the cookie).
    Ok(String),
    Wrong,
    /// Seconds until attempts are taken again.
    Limited(u64),
}

fn token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Equal-time comparison (no early exit on the first differing byte).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sessions {
    pub fn new(password_hash: String, lifetime: Duration) -> Self {
        Self { password_hash, lifetime, sessions: Mutex::default(), failures: Mutex::default() }
    }

    fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let mut f = lock(&self.failures);
        f.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        let (count, since) = f.get(&ip)?;
        (*count >= MAX_FAILURES).then(|| FAILURE_WINDOW.saturating_sub(since.elapsed()).as_secs().max(1))
    }

    fn failed(&self, ip: IpAddr) {
        let mut f = lock(&self.failures);
        let entry = f.entry(ip).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Checks a password from `ip` (argon2 runs off the async workers).
    pub async fn login(&self, ip: IpAddr, password: String) -> LoginOutcome {
        if let Some(secs) = self.blocked(ip) {
            return LoginOutcome::Limited(secs);
        }
        let hash = self.password_hash.clone();
        let ok = tokio::task::spawn_blocking(move || tessera_meta::password::verify_password(&hash, &password))
            .await
            .unwrap_or(false);
        if !ok {
            self.failed(ip);
            tracing::warn!(%ip, "console login with a wrong password");
            return LoginOutcome::Wrong;
        }
        let id = token();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.created.elapsed() < self.lifetime);
        sessions.insert(id.clone(), Session { csrf: token(), created: Instant::now() });
        LoginOutcome::Ok(id)
    }

    /// The session the request's cookie names, if it is live.
    pub fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let id = session_cookie(headers)?;
        let sessions = lock(&self.sessions);
        let (_, s) = sessions.iter().find(|(k, _)| same(k, &id))?;
        (s.created.elapsed() < self.lifetime).then(|| s.clone())
    }

    /// The session, if the request has one and `csrf` is its token.
    pub fn session_with_csrf(&self, headers: &HeaderMap, csrf: &str) -> Option<Session> {
        self.session(headers).filter(|s| same(&s.csrf, csrf))
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            lock(&self.sessions).remove(&id);
        }
    }

    /// `Set-Cookie` for a new session.
    pub fn cookie(&self, id: &str) -> String {
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}", self.lifetime.as_secs())
    }
}

/// `Set-Cookie` that ends the session in the browser.
pub fn expired_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        let hash = tessera_meta::password::hash_password("s3cret-pass", b"saltsaltsalt").unwrap();
        Sessions::new(hash, Duration::from_secs(60))
    }

    #[tokio::test]
    async fn a_login_gives_a_session_the_cookie_finds_and_wrong_passwords_are_limited() {
        let s = sessions();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let LoginOutcome::Ok(id) = s.login(ip, "s3cret-pass".into()).await else { panic!("login refused") };
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("other=1; {COOKIE}={id}").parse().unwrap());
        let session = s.session(&headers).expect("session");
        assert!(s.session_with_csrf(&headers, &session.csrf).is_some());
        assert!(s.session_with_csrf(&headers, "forged").is_none());
        for _ in 0..MAX_FAILURES {
            assert_eq!(s.login(ip, "nope".into()).await, LoginOutcome::Wrong);
        }
        assert!(matches!(s.login(ip, "s3cret-pass".into()).await, LoginOutcome::Limited(_)));
        s.logout(&headers);
        assert!(s.session(&headers).is_none());
    }
}
