//! Commands over a serial line to a microcontroller, in the line protocol documented at
//! [`command_line`](super::command_line).

use std::io::Write;
use std::time::Duration;

use crate::error::Result;

use super::output::{io_error, option_error, CommandSink};
use super::serial_proto::{write_command_line, write_event_line};
use super::{Command, FollowEvent};

/// Writes the serial line protocol to a serial device (8N1, no flow control).
pub struct SerialSink {
    port: Box<dyn serialport::SerialPort>,
    device: String,
    buf: String,
}

impl SerialSink {
    /// Opens `device` at `baud`; a missing or busy device is an error naming it.
    pub fn open(device: &str, baud: u32) -> Result<Self> {
        let port = serialport::new(device, baud)
            .timeout(Duration::from_millis(200))
            .open()
            .map_err(|e| option_error(format!("cannot open serial device {device}: {e}")))?;
        Ok(SerialSink {
            port,
            device: device.to_string(),
            buf: String::with_capacity(64),
        })
    }

    /// The device path.
    pub fn device(&self) -> &str {
        &self.device
    }

    fn write(&mut self) -> Result<()> {
        self.port
            .write_all(self.buf.as_bytes())
            .and_then(|_| self.port.flush())
            .map_err(|e| io_error(&self.device, e))
    }
}

impl CommandSink for SerialSink {
    fn send(&mut self, cmd: &Command) -> Result<()> {
        self.buf.clear();
        write_command_line(&mut self.buf, cmd);
        self.write()
    }

    fn send_event(&mut self, ev: &FollowEvent) -> Result<()> {
        self.buf.clear();
        write_event_line(&mut self.buf, ev);
        self.write()
    }
}
