//! Whether an image file ends where its format says it ends: a copy cut short (an
//! interrupted transfer, a full disk) still has a good header, so the size check alone
//! passes it, and LinkedIn would show the upper part of the picture, or nothing.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

/// A PNG's chunks, walked by their lengths (no data read) up to `IEND`.
pub fn png(file: &File) -> Result<(), String> {
    let mut r = BufReader::new(file);
    r.seek(SeekFrom::Start(8)).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut at = 8u64;
    loop {
        let mut head = [0u8; 8];
        if at + 8 > len || r.read_exact(&mut head).is_err() {
            return Err(cut_short("a PNG image", "its last chunk (IEND)"));
        }
        let size = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        // The chunk's data and its CRC.
        let end = at + 8 + size + 4;
        if end > len {
            return Err(cut_short("a PNG image", "its last chunk (IEND)"));
        }
        if &head[4..8] == b"IEND" {
            return Ok(());
        }
        r.seek_relative((size + 4) as i64)
            .map_err(|e| e.to_string())?;
        at = end;
    }
}

/// A JPEG's segments, walked by their lengths, and its scans, read to their ends, up to the
/// end-of-image marker (`FF D9`). What follows it (a phone's trailer, a motion photo's
/// video) is not looked at; a file cut inside the image data never reaches the marker.
pub fn jpeg(file: &File) -> Result<(), String> {
    let mut r = BufReader::with_capacity(64 * 1024, file);
    r.seek(SeekFrom::Start(2)).map_err(|e| e.to_string())?;
    let short = || {
        cut_short("a JPEG image", "its end marker (FF D9)")
            + " (if it opens whole, its encoder left the marker out: save it again from an image editor)"
    };
    let byte = |r: &mut BufReader<&File>| -> Result<u8, String> {
        let mut b = [0u8];
        r.read_exact(&mut b).map_err(|_| short())?;
        Ok(b[0])
    };
    // The marker that follows, found by the caller or read here.
    let mut next: Option<u8> = None;
    loop {
        let marker = match next.take() {
            Some(m) => m,
            None => {
                while byte(&mut r)? != 0xFF {}
                let mut m = byte(&mut r)?;
                while m == 0xFF {
                    m = byte(&mut r)?;
                }
                m
            }
        };
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 => {}
            _ => {
                let len = u16::from_be_bytes([byte(&mut r)?, byte(&mut r)?]);
                if len < 2 {
                    return Err("a JPEG image, but one of its segments is damaged".into());
                }
                r.seek_relative(i64::from(len) - 2)
                    .map_err(|e| e.to_string())?;
                if marker == 0xDA {
                    // The scan's data: up to the first marker that is neither a stuffed
                    // byte (FF 00) nor a restart (FF D0-D7).
                    loop {
                        if byte(&mut r)? != 0xFF {
                            continue;
                        }
                        let mut m = byte(&mut r)?;
                        while m == 0xFF {
                            m = byte(&mut r)?;
                        }
                        if m != 0x00 && !(0xD0..=0xD7).contains(&m) {
                            next = Some(m);
                            break;
                        }
                    }
                }
            }
        }
    }
}

fn cut_short(what: &str, missing: &str) -> String {
    format!("{what}, but the file ends before {missing}: it was cut short (an interrupted copy, a full disk?); copy it again")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn png_bytes() -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        };
        b.extend(chunk(b"IHDR", &[0; 13]));
        b.extend(chunk(b"IDAT", &[7; 300]));
        b.extend(chunk(b"IEND", &[]));
        b
    }

    #[test]
    fn a_png_is_whole_only_with_its_iend_chunk() {
        let whole = png_bytes();
        assert_eq!(png(&file(&whole)), Ok(()));
        for cut in [whole.len() - 1, whole.len() - 12, 100, 40, 9] {
            let e = png(&file(&whole[..cut])).unwrap_err();
            assert!(e.contains("cut short"), "{cut}: {e}");
        }
    }

    #[test]
    fn a_jpeg_is_whole_only_with_an_end_marker_after_its_last_scan() {
        // SOI, an APP1 with a thumbnail (its own SOS and EOI), the main scan, EOI.
        let mut whole = vec![
            0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x07, 0xFF, 0xDA, 0x11, 0xFF, 0xD9,
        ];
        whole.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02]);
        whole.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD3, 0x56].repeat(20_000));
        let main_data_end = whole.len();
        whole.extend_from_slice(&[0xFF, 0xD9]);
        assert_eq!(jpeg(&file(&whole)), Ok(()));
        // Trailing bytes after the end marker (some cameras add them) are fine.
        let mut trailing = whole.clone();
        trailing.extend_from_slice(b"motion photo video \xFF\xDA\x00\x02 more");
        assert_eq!(jpeg(&file(&trailing)), Ok(()));
        // Cut inside the main scan: only the thumbnail's end marker is there.
        for cut in [main_data_end, main_data_end - 1, 100_000, 20] {
            let e = jpeg(&file(&whole[..cut])).unwrap_err();
            assert!(e.contains("cut short"), "{cut}: {e}");
        }
    }
}
