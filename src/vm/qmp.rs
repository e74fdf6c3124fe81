//! The QEMU Machine Protocol, as far as `bake test` needs it: pressing the guest's ACPI power
//! button (`system_powerdown`).
//!
//! QMP is JSON, one object per line, over the Unix socket QEMU listens on (`-qmp
//! unix:PATH,server=on,wait=off`). QEMU greets with `{"QMP": ...}`; a client must send
//! `qmp_capabilities` before any other command; every command gets `{"return": ...}` or
//! `{"error": {"class": ..., "desc": ...}}`, and events (`{"event": ...}`) may arrive between
//! them at any time. (QEMU's `docs/interop/qmp-spec.rst`.)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// How long QEMU may take to answer one command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to QEMU's QMP socket at `socket` and presses the power button. The error is a
/// phrase for a report.
pub fn power_button(socket: &Path) -> Result<(), String> {
    let stream = UnixStream::connect(socket).map_err(|e| format!("cannot connect to `{}`: {e}", socket.display()))?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let greeting = read_object(&mut reader)?;
    if greeting.get("QMP").is_none() {
        return Err(format!("QEMU did not greet as QMP does: `{greeting}`"));
    }
    for command in ["qmp_capabilities", "system_powerdown"] {
        execute(&mut reader, &mut writer, command)?;
    }
    Ok(())
}

/// Sends `command` (without arguments) and waits for its answer, skipping events.
fn execute(reader: &mut impl BufRead, writer: &mut impl Write, command: &str) -> Result<Value, String> {
    let line = format!("{}\n", serde_json::json!({ "execute": command }));
    writer.write_all(line.as_bytes()).map_err(|e| format!("cannot send `{command}`: {e}"))?;
    loop {
        let answer = read_object(reader)?;
        if answer.get("event").is_some() {
            continue;
        }
        if let Some(value) = answer.get("return") {
            return Ok(value.clone());
        }
        let desc = answer.pointer("/error/desc").and_then(Value::as_str);
        return Err(match desc {
            Some(desc) => format!("QEMU refused `{command}`: {desc}"),
            None => format!("QEMU answered `{command}` with `{answer}`"),
        });
    }
}

/// The next JSON object on the socket.
fn read_object(reader: &mut impl BufRead) -> Result<Value, String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Err("QEMU closed its QMP socket".to_string()),
        Ok(_) => {
            serde_json::from_str(&line).map_err(|e| format!("QEMU sent what is not JSON ({e}): `{}`", line.trim()))
        }
        Err(e) => Err(format!("cannot read from QEMU's QMP socket: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_among_events() {
        let mut sent = Vec::new();
        let mut from_qemu = std::io::Cursor::new(
            "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"POWERDOWN\"}\n{\"return\": {}}\n",
        );
        let answer = execute(&mut from_qemu, &mut sent, "system_powerdown").unwrap();
        assert_eq!(answer, serde_json::json!({}));
        assert_eq!(String::from_utf8(sent).unwrap(), "{\"execute\":\"system_powerdown\"}\n");
    }

    #[test]
    fn refusals_and_a_closed_socket_are_errors() {
        let mut from_qemu = std::io::Cursor::new(
            "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation\"}}\n",
        );
        let error = execute(&mut from_qemu, &mut Vec::new(), "system_powerdown").unwrap_err();
        assert_eq!(error, "QEMU refused `system_powerdown`: Expecting capabilities negotiation");
        let error = execute(&mut std::io::Cursor::new(""), &mut Vec::new(), "qmp_capabilities").unwrap_err();
        assert_eq!(error, "QEMU closed its QMP socket");
    }

    #[test]
    fn the_power_button_is_pressed_after_the_greeting_and_the_capabilities() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("qmp.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let qemu = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            writer.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\n").unwrap();
            let mut commands = Vec::new();
            for _ in 0..2 {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                commands.push(line);
                writer.write_all(b"{\"return\": {}}\n").unwrap();
            }
            commands
        });
        power_button(&socket).unwrap();
        let commands = qemu.join().unwrap();
        assert_eq!(commands, ["{\"execute\":\"qmp_capabilities\"}\n", "{\"execute\":\"system_powerdown\"}\n"]);
    }
}
