//! Media files for tests and benchmarks, made in memory: PNG and PDF whose headers say what
//! intake checks, MP4 of a given length and size (as in tests/bundles.rs).
#![allow(dead_code)]

use sha2::{Digest, Sha256};

pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG of `w`×`h` pixels, as its header says.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        c.extend_from_slice(&body);
        c.extend_from_slice(&crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01],
    ));
    out.extend(chunk(b"IEND", &[]));
    out
}

/// A PDF of `pages` blank pages.
pub fn pdf(pages: usize) -> Vec<u8> {
    use lopdf::{dictionary, Document, Object};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let kids: Vec<Object> = (0..pages)
        .map(|_| {
            doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
            })
            .into()
        })
        .collect();
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => pages as i64,
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// A zlib stream of `prefix`, `zeros` zero bytes, then `suffix`, built by hand (no
/// compressor): one fixed-Huffman block of literals, a literal 0, back-references of 258
/// bytes at distance 1, literals. About 13 bits per 258 zeros: 2 GiB of them from 13 MB.
pub fn zlib_around_zeros(prefix: &[u8], zeros: u64, suffix: &[u8]) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        len: u32,
    }
    impl Bits {
        /// `count` bits of `value`, least significant first (deflate's header fields).
        fn put(&mut self, value: u64, count: u32) {
            self.acc |= value << self.len;
            self.len += count;
            while self.len >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.len -= 8;
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u64, count: u32) {
            let reversed = (0..count).fold(0, |r, i| (r << 1) | ((code >> i) & 1));
            self.put(reversed, count);
        }
        fn literal(&mut self, b: u8) {
            match b {
                0..=143 => self.code(0x30 + u64::from(b), 8),
                _ => self.code(0x190 + u64::from(b - 144), 9),
            }
        }
    }
    assert!(zeros >= 1 && (zeros - 1) % 258 == 0, "1 + 258·k zeros");
    let mut b = Bits {
        out: vec![0x78, 0x01],
        acc: 0,
        len: 0,
    };
    b.put(1, 1); // BFINAL
    b.put(1, 2); // BTYPE = fixed Huffman
    for &byte in prefix {
        b.literal(byte);
    }
    b.literal(0);
    for _ in 0..(zeros - 1) / 258 {
        b.code(0xC5, 8); // length 258 (code 285)
        b.code(0, 5); // distance 1
    }
    for &byte in suffix {
        b.literal(byte);
    }
    b.code(0, 7); // end of block
    if b.len > 0 {
        b.put(0, 8 - b.len);
    }
    // Adler-32.
    let (mut a1, mut a2) = (1u64, 0u64);
    for &byte in prefix {
        a1 = (a1 + u64::from(byte)) % 65521;
        a2 = (a2 + a1) % 65521;
    }
    a2 = (a2 + (zeros % 65521) * a1) % 65521;
    for &byte in suffix {
        a1 = (a1 + u64::from(byte)) % 65521;
        a2 = (a2 + a1) % 65521;
    }
    b.out
        .extend_from_slice(&(((a2 as u32) << 16) | a1 as u32).to_be_bytes());
    b.out
}

/// A small PDF whose page tree sits in an object stream behind `zeros` zero bytes (a
/// "decompression bomb"): only a reader that inflates it whole, needing that much memory,
/// finds its one page.
pub fn pdf_bomb(zeros: u64) -> Vec<u8> {
    let objects = [
        "<</Type/Pages/Kids[3 0 R]/Count 1>>",
        "<</Type/Page/Parent 2 0 R>>",
    ];
    let header = format!("2 0 3 {} ", objects[0].len() + 1);
    let body = format!("{} {} ", objects[0], objects[1]);
    let first = header.len() as u64 + zeros;
    let stream = zlib_around_zeros(header.as_bytes(), zeros, body.as_bytes());
    let mut out = b"%PDF-1.5\n".to_vec();
    let mut offsets = Vec::new();
    offsets.push(out.len());
    out.extend_from_slice(b"1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n");
    offsets.push(out.len());
    out.extend_from_slice(
        format!(
            "4 0 obj<</Type/ObjStm/N 2/First {first}/Filter/FlateDecode/Length {}>>stream\n",
            stream.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&stream);
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let xref = out.len();
    // Objects 1 and 4 in the table (2 and 3 live in the stream), 2 and 3 marked free.
    out.extend_from_slice(b"xref\n0 5\n0000000000 65535 f \n");
    out.extend_from_slice(format!("{:010} 00000 n \n", offsets[0]).as_bytes());
    out.extend_from_slice(b"0000000000 65535 f \n0000000000 65535 f \n");
    out.extend_from_slice(format!("{:010} 00000 n \n", offsets[1]).as_bytes());
    out.extend_from_slice(
        format!("trailer<</Size 5/Root 1 0 R>>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
    );
    out
}

pub fn mp4_box(kind: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut b = ((8 + payload.len()) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

pub fn mp4_full(kind: &[u8], version_flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = version_flags.to_be_bytes().to_vec();
    p.extend_from_slice(payload);
    mp4_box(kind, &p)
}

pub fn be(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// An MP4 of `millis` ms padded with `mdat` to `size` bytes; the padding varies with `seed`
/// so every part of the file is distinct.
pub fn mp4(millis: u32, size: usize, seed: u8) -> Vec<u8> {
    let matrix = be(&[0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x4000_0000]);
    let ftyp = mp4_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41");
    let mut mvhd = be(&[0, 0, 1000, millis, 0x10000]);
    mvhd.extend_from_slice(&[0x01, 0x00]);
    mvhd.extend_from_slice(&[0; 10]);
    mvhd.extend_from_slice(&matrix);
    mvhd.extend_from_slice(&[0; 24]);
    mvhd.extend_from_slice(&be(&[2]));
    let mut tkhd = be(&[0, 0, 1, 0, millis, 0, 0, 0, 0]);
    tkhd.extend_from_slice(&matrix);
    tkhd.extend_from_slice(&be(&[640 << 16, 480 << 16]));
    let mut mdhd = be(&[0, 0, 1000, millis]);
    mdhd.extend_from_slice(&[0x55, 0xC4, 0, 0]);
    let mut hdlr = be(&[0]);
    hdlr.extend_from_slice(b"vide");
    hdlr.extend_from_slice(&[0; 12]);
    hdlr.extend_from_slice(b"VideoHandler\0");
    let stbl = mp4_box(
        b"stbl",
        &[
            mp4_full(b"stsd", 0, &be(&[0])),
            mp4_full(b"stts", 0, &be(&[0])),
            mp4_full(b"stsc", 0, &be(&[0])),
            mp4_full(b"stsz", 0, &be(&[0, 0])),
            mp4_full(b"stco", 0, &be(&[0])),
        ]
        .concat(),
    );
    let dinf = mp4_box(
        b"dinf",
        &mp4_full(b"dref", 0, &[be(&[1]), mp4_full(b"url ", 1, &[])].concat()),
    );
    let minf = mp4_box(
        b"minf",
        &[mp4_full(b"vmhd", 1, &[0; 8]), dinf, stbl].concat(),
    );
    let mdia = mp4_box(
        b"mdia",
        &[
            mp4_full(b"mdhd", 0, &mdhd),
            mp4_full(b"hdlr", 0, &hdlr),
            minf,
        ]
        .concat(),
    );
    let trak = mp4_box(b"trak", &[mp4_full(b"tkhd", 3, &tkhd), mdia].concat());
    let moov = mp4_box(b"moov", &[mp4_full(b"mvhd", 0, &mvhd), trak].concat());
    let mut out = [ftyp, moov].concat();
    let pad = size.saturating_sub(out.len() + 8);
    let padding: Vec<u8> = (0..pad)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect();
    out.extend(mp4_box(b"mdat", &padding));
    out
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A baseline JPEG header of `w`×`h` (no scan data: only the header is read at intake).
pub fn jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    out.extend_from_slice(b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00");
    out.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08]);
    out.extend_from_slice(&h.to_be_bytes());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// A 1×1 GIF of `frames` frames.
pub fn gif(frames: usize) -> Vec<u8> {
    let mut out = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
    for _ in 0..frames {
        out.extend_from_slice(b"\x21\xf9\x04\x00\x0a\x00\x00\x00");
        out.extend_from_slice(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00");
    }
    out.push(0x3b);
    out
}
