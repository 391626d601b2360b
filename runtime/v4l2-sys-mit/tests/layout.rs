//! Checks the committed bindings against the kernel headers of the machine running the tests.
//!
//! A small C program, built with `$CC_<target>` / `$CC` / `cc` against `<linux/videodev2.h>`,
//! prints sizes, alignments, field offsets, constants and ioctl numbers; the test compares
//! them with the same values taken from the Rust bindings. Without a C compiler for the target
//! architecture, the header, or a way to run the probe, it prints `skipping: ...` and passes.
//!
//! bindgen does not emit the function-like macros of videodev2.h, so there is no
//! `V4L2_PIX_FMT_*` fourcc or `VIDIOC_*` constant to compare; the ioctl numbers below are
//! computed from the Rust struct sizes the way the `v4l` crate computes them.
#![cfg(all(
    target_os = "linux",
    any(
        all(target_arch = "x86_64", target_pointer_width = "64"),
        all(target_arch = "aarch64", target_pointer_width = "64"),
        target_arch = "arm"
    )
))]

use std::env;
use std::fs;
use std::io::ErrorKind;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use v4l2_sys_mit as sys;

/// One value computed on both sides: the C expression and the Rust value.
struct Check {
    c_expr: String,
    rust: u64,
}

fn check(c_expr: impl Into<String>, rust: u64) -> Check {
    Check {
        c_expr: c_expr.into(),
        rust,
    }
}

macro_rules! layout {
    ($out:ident, $ty:ident $(, $field:ident => $c_field:ident)* $(,)?) => {
        $out.push(check(
            concat!("sizeof(struct ", stringify!($ty), ")"),
            size_of::<sys::$ty>() as u64,
        ));
        $out.push(check(
            concat!("_Alignof(struct ", stringify!($ty), ")"),
            align_of::<sys::$ty>() as u64,
        ));
        $(
            $out.push(check(
                concat!(
                    "offsetof(struct ", stringify!($ty), ", ", stringify!($c_field), ")"
                ),
                offset_of!(sys::$ty, $field) as u64,
            ));
        )*
    };
}

macro_rules! constants {
    ($out:ident, $($rust:ident => $c:ident),* $(,)?) => {
        $( $out.push(check(stringify!($c), sys::$rust as u64)); )*
    };
}

// Directions of the asm-generic/ioctl.h encoding, used by x86, arm and arm64.
const W: u64 = 1;
const R: u64 = 2;
const RW: u64 = R | W;

/// `_IOC(dir, 'V', nr, sizeof(T))`, as the `v4l` crate computes its `VIDIOC_*` numbers.
fn ioctl<T>(name: &str, dir: u64, nr: u64) -> Check {
    let size = size_of::<T>() as u64;
    check(name, (dir << 30) | (size << 16) | ((b'V' as u64) << 8) | nr)
}

macro_rules! ioctls {
    ($out:ident, $($name:ident => $dir:ident, $nr:literal, $ty:ty;)*) => {
        $( $out.push(ioctl::<$ty>(stringify!($name), $dir, $nr)); )*
    };
}

fn checks() -> Vec<Check> {
    let mut out = Vec::new();

    layout!(out, v4l2_capability,
        driver => driver, card => card, bus_info => bus_info, version => version,
        capabilities => capabilities, device_caps => device_caps, reserved => reserved);
    layout!(out, v4l2_format, type_ => type, fmt => fmt);
    layout!(out, v4l2_pix_format,
        width => width, height => height, pixelformat => pixelformat, field => field,
        bytesperline => bytesperline, sizeimage => sizeimage, colorspace => colorspace,
        priv_ => priv, flags => flags, quantization => quantization, xfer_func => xfer_func);
    layout!(out, v4l2_pix_format_mplane,
        width => width, height => height, pixelformat => pixelformat, field => field,
        colorspace => colorspace, plane_fmt => plane_fmt, num_planes => num_planes,
        flags => flags);
    layout!(out, v4l2_buffer,
        index => index, type_ => type, bytesused => bytesused, flags => flags,
        field => field, timestamp => timestamp, timecode => timecode, sequence => sequence,
        memory => memory, m => m, length => length, reserved2 => reserved2);
    layout!(out, v4l2_plane,
        bytesused => bytesused, length => length, m => m, data_offset => data_offset,
        reserved => reserved);
    layout!(out, v4l2_timecode,
        type_ => type, flags => flags, frames => frames, seconds => seconds,
        minutes => minutes, hours => hours, userbits => userbits);
    layout!(out, v4l2_requestbuffers,
        count => count, type_ => type, memory => memory, capabilities => capabilities,
        flags => flags, reserved => reserved);
    layout!(out, v4l2_exportbuffer,
        type_ => type, index => index, plane => plane, flags => flags, fd => fd);
    layout!(out, v4l2_fmtdesc,
        index => index, type_ => type, flags => flags, description => description,
        pixelformat => pixelformat, mbus_code => mbus_code, reserved => reserved);
    layout!(out, v4l2_frmsizeenum,
        index => index, pixel_format => pixel_format, type_ => type, reserved => reserved);
    layout!(out, v4l2_frmivalenum,
        index => index, pixel_format => pixel_format, width => width, height => height,
        type_ => type, reserved => reserved);
    layout!(out, v4l2_streamparm, type_ => type, parm => parm);
    layout!(out, v4l2_captureparm,
        capability => capability, capturemode => capturemode, timeperframe => timeperframe,
        extendedmode => extendedmode, readbuffers => readbuffers);
    layout!(out, v4l2_fract, numerator => numerator, denominator => denominator);
    layout!(out, v4l2_queryctrl,
        id => id, type_ => type, name => name, minimum => minimum, maximum => maximum,
        step => step, default_value => default_value, flags => flags);
    layout!(out, v4l2_query_ext_ctrl,
        id => id, type_ => type, name => name, minimum => minimum, maximum => maximum,
        step => step, default_value => default_value, flags => flags,
        elem_size => elem_size, elems => elems, nr_of_dims => nr_of_dims, dims => dims);
    layout!(out, v4l2_querymenu, id => id, index => index, reserved => reserved);
    layout!(out, v4l2_control, id => id, value => value);
    layout!(out, v4l2_ext_control, id => id, size => size, reserved2 => reserved2);
    layout!(out, v4l2_ext_controls,
        count => count, error_idx => error_idx, request_fd => request_fd,
        reserved => reserved, controls => controls);
    layout!(out, v4l2_input, index => index, name => name, type_ => type, std => std);
    layout!(out, timeval, tv_sec => tv_sec, tv_usec => tv_usec);

    constants!(out,
        VIDEO_MAX_PLANES => VIDEO_MAX_PLANES,
        V4L2_CAP_VIDEO_CAPTURE => V4L2_CAP_VIDEO_CAPTURE,
        V4L2_CAP_VIDEO_CAPTURE_MPLANE => V4L2_CAP_VIDEO_CAPTURE_MPLANE,
        V4L2_CAP_VIDEO_OUTPUT => V4L2_CAP_VIDEO_OUTPUT,
        V4L2_CAP_READWRITE => V4L2_CAP_READWRITE,
        V4L2_CAP_STREAMING => V4L2_CAP_STREAMING,
        V4L2_CAP_DEVICE_CAPS => V4L2_CAP_DEVICE_CAPS,
        V4L2_CAP_TIMEPERFRAME => V4L2_CAP_TIMEPERFRAME,
        V4L2_FMT_FLAG_COMPRESSED => V4L2_FMT_FLAG_COMPRESSED,
        V4L2_PIX_FMT_PRIV_MAGIC => V4L2_PIX_FMT_PRIV_MAGIC,
        V4L2_BUF_FLAG_MAPPED => V4L2_BUF_FLAG_MAPPED,
        V4L2_BUF_FLAG_QUEUED => V4L2_BUF_FLAG_QUEUED,
        V4L2_BUF_FLAG_DONE => V4L2_BUF_FLAG_DONE,
        V4L2_BUF_FLAG_ERROR => V4L2_BUF_FLAG_ERROR,
        V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC => V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC,
        V4L2_CTRL_CLASS_USER => V4L2_CTRL_CLASS_USER,
        V4L2_CTRL_CLASS_CAMERA => V4L2_CTRL_CLASS_CAMERA,
        V4L2_CTRL_FLAG_DISABLED => V4L2_CTRL_FLAG_DISABLED,
        V4L2_CTRL_FLAG_NEXT_CTRL => V4L2_CTRL_FLAG_NEXT_CTRL,
        V4L2_CID_BASE => V4L2_CID_BASE,
        V4L2_CID_BRIGHTNESS => V4L2_CID_BRIGHTNESS,
        V4L2_CID_EXPOSURE_ABSOLUTE => V4L2_CID_EXPOSURE_ABSOLUTE,
        v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE => V4L2_BUF_TYPE_VIDEO_CAPTURE,
        v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE => V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE,
        v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_OUTPUT => V4L2_BUF_TYPE_VIDEO_OUTPUT,
        v4l2_memory_V4L2_MEMORY_MMAP => V4L2_MEMORY_MMAP,
        v4l2_memory_V4L2_MEMORY_USERPTR => V4L2_MEMORY_USERPTR,
        v4l2_memory_V4L2_MEMORY_DMABUF => V4L2_MEMORY_DMABUF,
        v4l2_field_V4L2_FIELD_ANY => V4L2_FIELD_ANY,
        v4l2_field_V4L2_FIELD_NONE => V4L2_FIELD_NONE,
        v4l2_frmsizetypes_V4L2_FRMSIZE_TYPE_DISCRETE => V4L2_FRMSIZE_TYPE_DISCRETE,
        v4l2_frmsizetypes_V4L2_FRMSIZE_TYPE_STEPWISE => V4L2_FRMSIZE_TYPE_STEPWISE,
        v4l2_frmivaltypes_V4L2_FRMIVAL_TYPE_DISCRETE => V4L2_FRMIVAL_TYPE_DISCRETE,
        v4l2_ctrl_type_V4L2_CTRL_TYPE_INTEGER => V4L2_CTRL_TYPE_INTEGER,
        v4l2_ctrl_type_V4L2_CTRL_TYPE_MENU => V4L2_CTRL_TYPE_MENU,
        v4l2_colorspace_V4L2_COLORSPACE_SRGB => V4L2_COLORSPACE_SRGB,
    );

    ioctls!(out,
        VIDIOC_QUERYCAP            => R, 0, sys::v4l2_capability;
        VIDIOC_ENUM_FMT            => RW, 2, sys::v4l2_fmtdesc;
        VIDIOC_G_FMT               => RW, 4, sys::v4l2_format;
        VIDIOC_S_FMT               => RW, 5, sys::v4l2_format;
        VIDIOC_REQBUFS             => RW, 8, sys::v4l2_requestbuffers;
        VIDIOC_QUERYBUF            => RW, 9, sys::v4l2_buffer;
        VIDIOC_QBUF                => RW, 15, sys::v4l2_buffer;
        VIDIOC_EXPBUF              => RW, 16, sys::v4l2_exportbuffer;
        VIDIOC_DQBUF               => RW, 17, sys::v4l2_buffer;
        VIDIOC_STREAMON            => W, 18, std::os::raw::c_int;
        VIDIOC_STREAMOFF           => W, 19, std::os::raw::c_int;
        VIDIOC_G_PARM              => RW, 21, sys::v4l2_streamparm;
        VIDIOC_S_PARM              => RW, 22, sys::v4l2_streamparm;
        VIDIOC_G_CTRL              => RW, 27, sys::v4l2_control;
        VIDIOC_S_CTRL              => RW, 28, sys::v4l2_control;
        VIDIOC_QUERYCTRL           => RW, 36, sys::v4l2_queryctrl;
        VIDIOC_QUERYMENU           => RW, 37, sys::v4l2_querymenu;
        VIDIOC_G_EXT_CTRLS         => RW, 71, sys::v4l2_ext_controls;
        VIDIOC_S_EXT_CTRLS         => RW, 72, sys::v4l2_ext_controls;
        VIDIOC_ENUM_FRAMESIZES     => RW, 74, sys::v4l2_frmsizeenum;
        VIDIOC_ENUM_FRAMEINTERVALS => RW, 75, sys::v4l2_frmivalenum;
        VIDIOC_QUERY_EXT_CTRL      => RW, 103, sys::v4l2_query_ext_ctrl;
    );

    out
}

#[cfg(target_arch = "x86_64")]
const ARCH: (&str, &str, &[&str]) = (
    "x86_64",
    "defined(__x86_64__) && !defined(__ILP32__)",
    &[
        "CC_x86_64_unknown_linux_gnu",
        "CC_x86_64_unknown_linux_musl",
    ],
);
#[cfg(target_arch = "aarch64")]
const ARCH: (&str, &str, &[&str]) = (
    "aarch64",
    "defined(__aarch64__) && !defined(__ILP32__)",
    &[
        "CC_aarch64_unknown_linux_gnu",
        "CC_aarch64_unknown_linux_musl",
    ],
);
#[cfg(target_arch = "arm")]
const ARCH: (&str, &str, &[&str]) = (
    "arm",
    "defined(__arm__)",
    &[
        "CC_armv7_unknown_linux_gnueabihf",
        "CC_arm_unknown_linux_gnueabihf",
    ],
);

/// C compiler command: `CC_<target>` (as set for cross builds), else `CC`, else `cc`.
fn compiler() -> Vec<String> {
    let (_, _, target_vars) = ARCH;
    let cc = target_vars
        .iter()
        .chain(["CC"].iter())
        .filter_map(|var| env::var(var).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "cc".to_string());
    cc.split_whitespace().map(str::to_string).collect()
}

/// Start of both probes: refuses a compiler for another architecture, includes the headers.
fn c_prelude() -> String {
    let (arch, arch_test, _) = ARCH;
    format!(
        "#if !({arch_test})\n\
         #error \"probe compiler does not target {arch}\"\n\
         #endif\n\
         #include <stddef.h>\n\
         #include <stdio.h>\n\
         #include <linux/version.h>\n\
         #include <linux/videodev2.h>\n"
    )
}

/// A program printing every value, one `<index> <value>` line each.
fn print_source(checks: &[Check]) -> String {
    let mut src = c_prelude();
    src.push_str("int main(void) {\n");
    src.push_str("\tprintf(\"LINUX_VERSION_CODE %u\\n\", (unsigned)LINUX_VERSION_CODE);\n");
    for (i, c) in checks.iter().enumerate() {
        src.push_str(&format!(
            "\tprintf(\"{i} %llu\\n\", (unsigned long long)({}));\n",
            c.c_expr
        ));
    }
    src.push_str("\treturn 0;\n}\n");
    src
}

/// The same comparisons as compile-time assertions, for when the probe cannot run (a
/// cross-compiled test under qemu-user cannot start another foreign binary).
fn assert_source(checks: &[Check]) -> String {
    let mut src = c_prelude();
    for (i, c) in checks.iter().enumerate() {
        src.push_str(&format!(
            "_Static_assert((unsigned long long)({}) == {}ULL, \"v4l2 check {i}\");\n",
            c.c_expr, c.rust
        ));
    }
    src
}

enum CompileError {
    /// Nothing to compare with: no compiler, no headers, wrong architecture.
    Skip(String),
    /// The compiler ran and failed; its diagnostics.
    Failed(String),
}

fn compile(cc: &[String], args: &[&str], src: &Path) -> Result<(), CompileError> {
    let (arch, _, _) = ARCH;
    let mut cmd = Command::new(&cc[0]);
    cmd.args(&cc[1..]).arg("-std=gnu11");
    if cfg!(target_arch = "arm") {
        // The bindings describe the default 32-bit time_t ABI (which the Rust libc crate
        // also uses), not the _TIME_BITS=64 one some toolchains enable by default.
        cmd.args(["-U_TIME_BITS", "-U_FILE_OFFSET_BITS"]);
    }
    let output = match cmd.args(args).arg(src).output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(CompileError::Skip(format!(
                "no C compiler: `{}` not found (set CC to a C compiler for {arch})",
                cc[0]
            )));
        }
        Err(e) => return Err(CompileError::Skip(format!("cannot run `{}`: {e}", cc[0]))),
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if stderr.contains("probe compiler does not target") {
        return Err(CompileError::Skip(format!(
            "`{}` does not compile for {arch} (set CC to a C compiler for {arch})",
            cc.join(" ")
        )));
    }
    if stderr.contains("videodev2.h") || stderr.contains("linux/version.h") {
        return Err(CompileError::Skip(format!(
            "`{}` finds no linux/videodev2.h (install the kernel headers, e.g. linux-libc-dev)",
            cc.join(" ")
        )));
    }
    Err(CompileError::Failed(stderr))
}

fn first_lines(text: &str) -> String {
    text.lines().take(10).collect::<Vec<_>>().join("\n")
}

/// Builds and runs the printing probe: `Ok(stdout)`, or `Err((reason, skip))` where `skip`
/// means there is nothing to compare with at all.
fn run_probe(cc: &[String], dir: &Path, checks: &[Check]) -> Result<String, (String, bool)> {
    let src = dir.join("probe.c");
    let exe = dir.join("probe");
    fs::write(&src, print_source(checks)).unwrap();
    let exe_arg = exe.to_str().unwrap();
    // Static first, so that a cross-built probe needs no target sysroot to run.
    let built = compile(cc, &["-static", "-o", exe_arg], &src)
        .or_else(|_| compile(cc, &["-o", exe_arg], &src));
    match built {
        Ok(()) => {}
        Err(CompileError::Skip(reason)) => return Err((reason, true)),
        Err(CompileError::Failed(stderr)) => {
            let reason = format!(
                "cannot build the C probe with `{}`:\n{}",
                cc.join(" "),
                first_lines(&stderr)
            );
            return Err((reason, false));
        }
    }
    match Command::new(&exe).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8(out.stdout).unwrap()),
        Ok(out) => Err((format!("the C probe did not run: {}", out.status), false)),
        Err(e) => Err((format!("the C probe did not run: {e}"), false)),
    }
}

fn skip(reason: &str) {
    println!("skipping: {reason}");
}

#[test]
fn bindings_match_system_headers() {
    let checks = checks();
    let cc = compiler();
    let dir: PathBuf = env::temp_dir().join(format!("v4l2-sys-mit-layout-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let probed = run_probe(&cc, &dir, &checks);

    let mut mismatches = Vec::new();
    match probed {
        Ok(stdout) => {
            let mut lines = stdout.lines();
            let version: u32 = lines
                .next()
                .and_then(|l| l.strip_prefix("LINUX_VERSION_CODE "))
                .and_then(|v| v.parse().ok())
                .expect("probe output starts with LINUX_VERSION_CODE");
            let mut c_values = vec![None; checks.len()];
            for line in lines {
                let (i, v) = line.split_once(' ').expect("probe line: <index> <value>");
                c_values[i.parse::<usize>().unwrap()] = Some(v.parse::<u64>().unwrap());
            }
            for (c, value) in checks.iter().zip(&c_values) {
                let value = value.expect("probe printed every check");
                let mark = if value == c.rust { "ok" } else { "MISMATCH" };
                println!(
                    "{mark:8} {:64} C {value:>10}  Rust {:>10}",
                    c.c_expr, c.rust
                );
                if value != c.rust {
                    mismatches.push(c.c_expr.clone());
                }
            }
            println!(
                "compared {} values for {} with `{}` and kernel headers {}.{}.{}",
                checks.len(),
                ARCH.0,
                cc.join(" "),
                version >> 16,
                (version >> 8) & 0xff,
                version & 0xff
            );
        }
        Err((reason, true)) => {
            let _ = fs::remove_dir_all(&dir);
            return skip(&reason);
        }
        Err((reason, false)) => {
            println!("{reason}; comparing with _Static_assert at compile time instead");
            let src = dir.join("probe_assert.c");
            fs::write(&src, assert_source(&checks)).unwrap();
            let failed: Vec<usize> = match compile(&cc, &["-fsyntax-only"], &src) {
                Ok(()) => Vec::new(),
                Err(CompileError::Skip(reason)) => {
                    let _ = fs::remove_dir_all(&dir);
                    return skip(&reason);
                }
                Err(CompileError::Failed(stderr)) => {
                    let failed: Vec<usize> = stderr
                        .split("v4l2 check ")
                        .skip(1)
                        .filter_map(|rest| {
                            let digits: String =
                                rest.chars().take_while(char::is_ascii_digit).collect();
                            digits.parse().ok()
                        })
                        .collect();
                    if failed.is_empty() {
                        let _ = fs::remove_dir_all(&dir);
                        return skip(&format!(
                            "cannot compile the C checks with `{}`:\n{}",
                            cc.join(" "),
                            first_lines(&stderr)
                        ));
                    }
                    failed
                }
            };
            for (i, c) in checks.iter().enumerate() {
                let ok = !failed.contains(&i);
                let mark = if ok { "ok" } else { "MISMATCH" };
                let relation = if ok { "==" } else { "!=" };
                println!("{mark:8} {:64} C {relation} Rust {:>10}", c.c_expr, c.rust);
                if !ok {
                    mismatches.push(c.c_expr.clone());
                }
            }
            println!(
                "compared {} values for {} at compile time with `{}`",
                checks.len(),
                ARCH.0,
                cc.join(" ")
            );
        }
    }
    let _ = fs::remove_dir_all(&dir);
    assert!(
        mismatches.is_empty(),
        "bindings differ from the system's <linux/videodev2.h>: {:?}",
        mismatches
    );
}
