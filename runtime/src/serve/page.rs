//! The viewer page: the stream, the stats and the follow panel of one camera at a time, with a
//! camera picker when the run has several.

/// The page, with `__VIGIA_TOKEN__`, `__VIGIA_CAMERAS__` and `__VIGIA_STREAM_URL__` to fill in.
const PAGE: &str = include_str!("page.html");

/// JSON for a `<script>` element: `<` escaped so that no value can close the element.
fn script_json(value: &serde_json::Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

/// The page for a server with `token`, `cameras` (`{name, follow}` objects) and `stream_url`
/// (the first camera's stream, for browsers without JavaScript; percent-encoded, so nothing in it
/// needs escaping in HTML).
pub fn render(token: Option<&str>, cameras: &[serde_json::Value], stream_url: &str) -> String {
    let token = match token {
        Some(t) => script_json(&serde_json::Value::String(t.to_string())),
        None => "null".to_string(),
    };
    PAGE.replace("__VIGIA_TOKEN__", &token)
        .replace(
            "__VIGIA_CAMERAS__",
            &script_json(&serde_json::Value::Array(cameras.to_vec())),
        )
        .replace("__VIGIA_STREAM_URL__", stream_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_close_the_script_element() {
        let cameras = [serde_json::json!({"name": "</script><b>", "follow": false})];
        let page = render(Some("a</script>"), &cameras, "/cameras/x/stream.mjpg");
        assert_eq!(page.matches("</script>").count(), 1, "only the page's own");
        assert!(page.contains(r#"const TOKEN = "a\u003c/script>";"#));
        assert!(page.contains(r#"const CAMERAS = [{"#));
        assert!(!page.contains("__VIGIA_"));
    }
}
