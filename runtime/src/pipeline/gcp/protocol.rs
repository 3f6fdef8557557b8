//! The Profiler API's REST mapping (`google.devtools.cloudprofiler.v2`),
//! as the agent speaks it: `CreateProfile` and `UpdateProfile` bodies,
//! proto3 JSON durations, and the `google.rpc.Status` error body whose
//! `RetryInfo` detail says how long the server wants the agent to wait.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The profile types of the API this agent can collect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProfileType {
    /// CPU time, from the sampler, for the requested duration.
    #[serde(rename = "CPU")]
    Cpu,
    /// The sampled heap now: in-use and allocated objects and bytes.
    #[serde(rename = "HEAP")]
    Heap,
    /// What was allocated during the requested duration.
    #[serde(rename = "HEAP_ALLOC")]
    HeapAlloc,
}

impl ProfileType {
    /// The API's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileType::Cpu => "CPU",
            ProfileType::Heap => "HEAP",
            ProfileType::HeapAlloc => "HEAP_ALLOC",
        }
    }
}

/// `Deployment`: what a profile is grouped under in the UI.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The Google Cloud project.
    pub project_id: String,
    /// The service name.
    pub target: String,
    /// `zone`, `version` and the configured labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `CreateProfileRequest` (its `parent` is the URL path).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateProfileRequest<'a> {
    pub(super) deployment: &'a Deployment,
    pub(super) profile_type: &'a [ProfileType],
}

/// `projects/{project}/profiles/{id}`, each part one plain path segment:
/// the name is used as the upload's URL path, so nothing in it may walk
/// up (`..`), start a query or a fragment, or be percent-encoded.
pub(super) fn valid_profile_name(name: &str) -> bool {
    let segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:~".contains(c))
    };
    let parts: Vec<&str> = name.split('/').collect();
    matches!(parts.as_slice(), ["projects", project, "profiles", id] if segment(project) && segment(id))
}

/// What `CreateProfile` answers: the profile the server wants. The object
/// is kept whole so the upload sends back every field it was given.
pub(super) struct Requested {
    pub(super) name: String,
    /// `None` for a type this agent does not know.
    pub(super) profile_type: Option<ProfileType>,
    /// The raw type name, for messages about unknown types.
    pub(super) type_name: String,
    pub(super) duration: Option<Duration>,
    pub(super) body: serde_json::Map<String, serde_json::Value>,
}

impl Requested {
    /// Reads a `CreateProfile` response body.
    pub(super) fn parse(body: &[u8]) -> Result<Requested, String> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON ({e})"))?;
        let serde_json::Value::Object(body) = value else {
            return Err("the answer is not a JSON object".to_owned());
        };
        let name = body
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or("the answer has no profile name")?;
        if !valid_profile_name(name) {
            // The name becomes the upload's path, sent with the token.
            return Err(format!(
                "the answer's profile name {:?} is not of the form projects/{{project}}/profiles/{{id}}",
                name.chars().take(120).collect::<String>()
            ));
        }
        let name = name.to_owned();
        let type_name = body
            .get("profileType")
            .and_then(|t| t.as_str())
            .ok_or("the answer has no profileType")?
            .to_owned();
        let profile_type =
            serde_json::from_value(serde_json::Value::String(type_name.clone())).ok();
        let duration = match body.get("duration") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(d)) => Some(parse_duration(d)?),
            Some(other) => return Err(format!("duration {other} is not a string")),
        };
        Ok(Requested {
            name,
            profile_type,
            type_name,
            duration,
            body,
        })
    }

    /// The `UpdateProfile` body: the profile as the server gave it, with
    /// the bytes and the agent's labels added.
    pub(super) fn into_upload(
        mut self,
        profile_base64: String,
        labels: &BTreeMap<String, String>,
    ) -> Vec<u8> {
        self.body.insert(
            "profileBytes".to_owned(),
            serde_json::Value::String(profile_base64),
        );
        if !labels.is_empty() {
            let merged = self
                .body
                .entry("labels")
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
            if let serde_json::Value::Object(merged) = merged {
                for (k, v) in labels {
                    merged.insert(k.clone(), serde_json::Value::String(v.clone()));
                }
            }
        }
        serde_json::to_vec(&self.body).unwrap_or_default()
    }
}

/// A proto3 JSON duration: decimal seconds with an `s` suffix (`"10s"`,
/// `"0.5s"`, `"1.000000001s"`).
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like \"10s\"");
    let number = text.strip_suffix('s').ok_or_else(bad)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs: u64 = whole.parse().map_err(|_| bad())?;
    let nanos: u32 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Duration::new(secs, nanos))
}

/// The proto3 JSON form of a duration (what the server sends).
#[cfg(test)]
fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        let fraction = format!("{:09}", d.subsec_nanos());
        format!("{}.{}s", d.as_secs(), fraction.trim_end_matches('0'))
    }
}

/// What an error answer says: its `google.rpc.Status` and, when present,
/// the server's `RetryInfo` delay.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ErrorAnswer {
    /// `status` (`"ABORTED"`, `"UNAUTHENTICATED"`, ...), when given.
    pub(super) status: Option<String>,
    /// `message`, cut to a length fit for a log line.
    pub(super) message: Option<String>,
    pub(super) retry_delay: Option<Duration>,
}

const RETRY_INFO: &str = "type.googleapis.com/google.rpc.RetryInfo";

impl ErrorAnswer {
    /// Reads an error body; anything that is not a `google.rpc.Status`
    /// gives an answer with nothing in it.
    pub(super) fn parse(body: &[u8]) -> ErrorAnswer {
        let mut answer = ErrorAnswer {
            status: None,
            message: None,
            retry_delay: None,
        };
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return answer;
        };
        let Some(error) = value.get("error") else {
            return answer;
        };
        answer.status = error
            .get("status")
            .and_then(|s| s.as_str())
            .map(str::to_owned);
        answer.message = error
            .get("message")
            .and_then(|m| m.as_str())
            .map(|m| m.chars().take(200).collect());
        answer.retry_delay = error
            .get("details")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
            .filter(|d| d.get("@type").and_then(|t| t.as_str()) == Some(RETRY_INFO))
            .find_map(|d| {
                d.get("retryDelay")?
                    .as_str()
                    .and_then(|t| parse_duration(t).ok())
            })
            .filter(|d| !d.is_zero());
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_write_the_proto3_json_form() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.000000001s"), Ok(Duration::new(1, 1)));
        for bad in [
            "10",
            "s",
            "-1s",
            "1.5.5s",
            "1.0000000001s",
            "1e3s",
            " 1s",
            ".5s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::new(2, 1)), "2.000000001s");
        for d in [
            Duration::ZERO,
            Duration::from_micros(1),
            Duration::new(7, 250_000_000),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn error_bodies_give_the_status_and_the_servers_retry_delay() {
        let aborted = br#"{"error": {"code": 409, "message": "profile not needed yet",
            "status": "ABORTED", "details": [
              {"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": "x"},
              {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "42.5s"}]}}"#;
        let answer = ErrorAnswer::parse(aborted);
        assert_eq!(answer.status.as_deref(), Some("ABORTED"));
        assert_eq!(answer.message.as_deref(), Some("profile not needed yet"));
        assert_eq!(answer.retry_delay, Some(Duration::from_millis(42_500)));
        // A retryDelay outside a RetryInfo detail is not one.
        let other = br#"{"error": {"status": "ABORTED", "details": [{"retryDelay": "5s"}]}}"#;
        assert_eq!(ErrorAnswer::parse(other).retry_delay, None);
        for junk in [&b"<html>busy</html>"[..], b"{}", b"[1]", b""] {
            assert_eq!(
                ErrorAnswer::parse(junk),
                ErrorAnswer {
                    status: None,
                    message: None,
                    retry_delay: None
                }
            );
        }
    }

    #[test]
    fn answers_keep_every_field_and_uploads_add_bytes_and_labels() {
        let answer = br#"{"name": "projects/p/profiles/abc", "profileType": "CPU",
            "deployment": {"projectId": "p", "target": "svc", "labels": {"zone": "z"}},
            "duration": "10s", "labels": {"server": "s"}, "startTime": "2026-12-02T00:00:00Z"}"#;
        let requested = Requested::parse(answer).unwrap();
        assert_eq!(requested.profile_type, Some(ProfileType::Cpu));
        assert_eq!(requested.duration, Some(Duration::from_secs(10)));
        let labels = BTreeMap::from([("instance".to_owned(), "host-1".to_owned())]);
        let upload: serde_json::Value =
            serde_json::from_slice(&requested.into_upload("AAEC".to_owned(), &labels)).unwrap();
        assert_eq!(upload["name"], "projects/p/profiles/abc");
        assert_eq!(upload["deployment"]["labels"]["zone"], "z");
        assert_eq!(upload["startTime"], "2026-12-02T00:00:00Z");
        assert_eq!(upload["profileBytes"], "AAEC");
        assert_eq!(upload["labels"]["server"], "s");
        assert_eq!(upload["labels"]["instance"], "host-1");

        let unknown =
            Requested::parse(br#"{"name": "projects/p/profiles/1", "profileType": "WALL"}"#)
                .unwrap();
        assert_eq!(unknown.profile_type, None);
        assert_eq!(unknown.type_name, "WALL");
        for bad in [
            &br#"{"profileType": "CPU"}"#[..],
            br#"{"name": "p/1", "profileType": "CPU"}"#,
            br#"{"name": "projects/p/profiles/../../../../evil?x=1#", "profileType": "CPU"}"#,
            br#"{"name": "projects/p/profiles/1/x", "profileType": "CPU"}"#,
            br#"{"name": "projects/../profiles/1", "profileType": "CPU"}"#,
            br#"{"name": "projects/p/profiles/a%2F", "profileType": "CPU"}"#,
            br#"{"name": "projects/p/profiles/1"}"#,
            br#"{"name": "projects/p/profiles/1", "profileType": "CPU", "duration": "ten"}"#,
            b"not json",
        ] {
            assert!(Requested::parse(bad).is_err());
        }
    }
}
