//! A buffer of f32 whose start is aligned to a cache line, for packed panels and the blocks
//! of values vector kernels load with aligned (or never line-splitting) loads.

/// A buffer of f32 aligned to 64 bytes (one cache line), grown on demand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlignedBuf {
    lines: Vec<Line>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C, align(64))]
struct Line([f32; 16]);

impl AlignedBuf {
    /// A buffer of `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        let mut buf = AlignedBuf::default();
        buf.ensure(len);
        buf
    }

    /// Makes room for at least `len` values (new ones are zero).
    pub fn ensure(&mut self, len: usize) {
        let lines = len.div_ceil(16);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line::default());
        }
    }

    /// All the values.
    pub fn as_slice(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]` with no padding (64 bytes).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.lines.len() * 16) }
    }

    /// The values as cache lines of 16 (each 64-byte aligned).
    pub fn as_lines(&self) -> &[[f32; 16]] {
        // SAFETY: `Line` is `repr(C)` around `[f32; 16]`: the same size, a stricter alignment.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast(), self.lines.len()) }
    }

    /// The values as cache lines of 16, writable.
    pub fn as_lines_mut(&mut self) -> &mut [[f32; 16]] {
        // SAFETY: as in `as_lines`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.lines.len()) }
    }

    /// All the values, writable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`.
        unsafe {
            std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast(), self.lines.len() * 16)
        }
    }
}
