//! Recycled frame buffers: sources take images from the pool, the last stage gives them back,
//! so a steady run allocates no frame memory after warm-up.

use crossbeam_channel::{bounded, Receiver, Sender};
use image::RgbImage;

/// A bounded pool of RGB frame buffers shared between threads.
#[derive(Clone)]
pub struct FramePool {
    tx: Sender<RgbImage>,
    rx: Receiver<RgbImage>,
}

impl FramePool {
    /// A pool keeping at most `capacity` spare buffers.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = bounded(capacity.max(1));
        FramePool { tx, rx }
    }

    /// A `w` x `h` image: a recycled one of that size when available (contents unspecified).
    pub fn take(&self, w: u32, h: u32) -> RgbImage {
        while let Ok(img) = self.rx.try_recv() {
            if img.dimensions() == (w, h) {
                return img;
            }
        }
        RgbImage::new(w, h)
    }

    /// Returns a buffer for reuse (dropped when the pool is full).
    pub fn give(&self, img: RgbImage) {
        let _ = self.tx.try_send(img);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recycles_buffers_of_the_right_size() {
        let pool = FramePool::new(2);
        let a = pool.take(4, 3);
        let ptr = a.as_raw().as_ptr();
        pool.give(a);
        let b = pool.take(4, 3);
        assert_eq!(b.as_raw().as_ptr(), ptr);
        pool.give(b);
        let c = pool.take(8, 8);
        assert_eq!(c.dimensions(), (8, 8));
    }
}
