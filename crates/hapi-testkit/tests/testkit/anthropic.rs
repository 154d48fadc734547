//! The fake Anthropic API over real HTTP, parsed the way a client would.
use hapi_testkit::{Script, start_fake_anthropic};
use serde_json::{Value, json};

/// Parses an SSE body into `(event name, data)` pairs, checking that every
/// event's name equals its data's `type`.
fn parse_sse(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|chunk| !chunk.trim().is_empty())
        .map(|chunk| {
            let mut name = None;
            let mut data = None;
            for line in chunk.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(d).expect("data is JSON"));
                }
            }
            let (name, data) = (name.expect("event line"), data.expect("data line"));
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn request(messages: Value, stream: bool) -> Value {
    json!({"model": "claude-opus-5-5", "max_tokens": 1000, "stream": stream,
           "tools": [{"name": "Bash", "input_schema": {}}], "messages": messages})
}

#[tokio::test]
async fn streams_a_tool_use_then_answers_from_the_transcript() {
    let server = start_fake_anthropic(Script::default()).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/messages?beta=true", server.url());
    let first = json!([{"role": "user", "content": [{"type": "text", "text": "do it"}]}]);
    let response = client
        .post(&url)
        .json(&request(first.clone(), true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = parse_sse(&response.text().await.unwrap());

    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let mut text = String::new();
    let mut tool_json = String::new();
    let mut tool_name = None;
    for (_, data) in &events {
        match data["delta"]["type"].as_str() {
            Some("text_delta") => text.push_str(data["delta"]["text"].as_str().unwrap()),
            Some("input_json_delta") => tool_json.push_str(data["delta"]["partial_json"].as_str().unwrap()),
            _ => {}
        }
        if data["content_block"]["type"] == "tool_use" {
            tool_name = data["content_block"]["name"].as_str().map(str::to_owned);
        }
    }
    assert_eq!(text, "I'll create the file.");
    assert_eq!(tool_name.as_deref(), Some("Bash"));
    let input: Value = serde_json::from_str(&tool_json).unwrap();
    assert_eq!(input["command"], "echo hello > out.txt");
    let delta = events.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert!(delta.1["usage"]["output_tokens"].is_u64());

    // Step 1, denied: plain JSON this time.
    let denied = json!([
        {"role": "user", "content": "do it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": true,
                                      "content": "denied by test"}]},
    ]);
    let body: Value = client
        .post(&url)
        .json(&request(denied, false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["content"][0]["text"], "The command was not run: denied by test");
    assert_eq!(body["stop_reason"], "end_turn");

    // A side request (no Bash tool) gets the short side text.
    let side = json!({"model": "m", "stream": true, "tools": [], "messages": first});
    let events = parse_sse(
        &client
            .post(&url)
            .json(&side)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let text: String = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "OK.");

    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.requests()[0]["messages"], first);
    server.shutdown().await;
}

#[tokio::test]
async fn answers_the_side_endpoints() {
    let server = start_fake_anthropic(Script::default()).await.unwrap();
    let client = reqwest::Client::new();
    let count: Value = client
        .post(format!("{}/v1/messages/count_tokens?beta=true", server.url()))
        .json(&json!({"messages": []}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(count["input_tokens"].as_u64().unwrap() > 0);
    for path in ["/", "/api/hello"] {
        let status = client
            .head(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "HEAD {path}");
    }
    let status = client
        .get(format!("{}/v1/models", server.url()))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let bad = client
        .post(format!("{}/v1/messages", server.url()))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let url = server.url();
    drop(server);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        reqwest::get(format!("{url}/")).await.is_err(),
        "dropping the server stops it"
    );
}

#[tokio::test]
async fn the_binary_writes_its_port_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let log = std::fs::File::create(dir.path().join("fake-anthropic.log")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fake-anthropic"))
        .arg("--port-file")
        .arg(&port_file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut port = None;
    for _ in 0..250 {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            port = Some(text.trim().parse::<u16>().expect("the port file holds a port"));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let port = port.expect("port file written");
    let status = reqwest::Client::new()
        .head(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let exit = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
