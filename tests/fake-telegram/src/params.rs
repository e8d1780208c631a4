//! Method parameters as the Bot API accepts them: from the query string and from an `application/json`,
//! `application/x-www-form-urlencoded` or `multipart/form-data` body, merged into one map.
//! Form and query values are strings, and object parameters (`reply_markup`, `reply_parameters`,
//! `allowed_updates`, …) arrive there as JSON-serialized strings, so the accessors accept either form.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::Request;
use serde_json::Value;

use crate::api::ApiError;

#[derive(Debug, Default, Clone)]
pub struct Params {
    values: HashMap<String, Value>,
    /// Files sent as multipart parts with a file name, by field name.
    pub files: HashMap<String, (String, Vec<u8>)>,
}

impl Params {
    pub async fn from_request(req: Request<Body>) -> Result<Params, ApiError> {
        let mut params = Params::default();
        if let Some(query) = req.uri().query() {
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                params.values.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, &())
                .await
                .map_err(|_| ApiError::bad_request("can't parse multipart/form-data request"))?;
            while let Some(field) = multipart
                .next_field()
                .await
                .map_err(|_| ApiError::bad_request("can't parse multipart/form-data request"))?
            {
                let name = field.name().unwrap_or_default().to_string();
                let file_name = field.file_name().map(str::to_string);
                let data = field
                    .bytes()
                    .await
                    .map_err(|_| ApiError::bad_request("can't parse multipart/form-data request"))?;
                match file_name {
                    Some(file_name) => {
                        params.files.insert(name, (file_name, data.to_vec()));
                    }
                    None => {
                        params.values.insert(name, Value::String(String::from_utf8_lossy(&data).into_owned()));
                    }
                }
            }
            return Ok(params);
        }
        let body = axum::body::to_bytes(req.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|_| ApiError::bad_request("request body is too big"))?;
        if body.is_empty() {
            return Ok(params);
        }
        if content_type.starts_with("application/json") {
            let value: Value =
                serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("can't parse JSON request"))?;
            match value {
                Value::Object(map) => params.values.extend(map),
                _ => return Err(ApiError::bad_request("JSON object expected")),
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            for (k, v) in form_urlencoded::parse(&body) {
                params.values.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
        Ok(params)
    }

    pub fn has(&self, name: &str) -> bool {
        self.values.get(name).is_some_and(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Option<String> {
        match self.values.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// An integer parameter; `Ok(None)` when absent, `Err` when present but not an integer.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ()> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
            Some(_) => Err(()),
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        match self.values.get(name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1"),
            Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
            _ => false,
        }
    }

    /// A JSON-serialized parameter: given as JSON in a JSON body, or as a string holding JSON otherwise.
    /// `Ok(None)` when absent, `Err` when the string is not JSON.
    pub fn json(&self, name: &str) -> Result<Option<Value>, ()> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => serde_json::from_str(s).map(Some).map_err(|_| ()),
            Some(v) => Ok(Some(v.clone())),
        }
    }
}
