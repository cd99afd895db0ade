//! The model buffer: a fixed-size static array that `strata fit` overwrites in the built
//! component, so the model travels inside the component and its sha256 covers it.
//!
//! Layout: [`MAGIC`] (16 bytes), the payload length (u32, little-endian), the payload
//! (the model as JSON), then filler up to [`CAPACITY`]. The filler is not zero, so the
//! linker keeps the whole array as bytes of a data segment (zeroed data may be left out),
//! and the patch never changes the component's length or structure. The magic is only
//! used at compile time here, so it occurs once in the component: in the buffer.

/// Marks the start of the buffer in the component's bytes.
pub const MAGIC: [u8; 16] = *b"STRATA-SCORECARD";
/// Bytes before the payload: magic and length.
pub const HEADER: usize = 20;
/// The whole buffer; the payload may use `CAPACITY - HEADER` bytes.
pub const CAPACITY: usize = 256 * 1024;
/// What the unused part of the buffer holds.
pub const FILLER: u8 = 0xA5;

const fn blank() -> [u8; CAPACITY] {
    let mut b = [FILLER; CAPACITY];
    let mut i = 0;
    while i < MAGIC.len() {
        b[i] = MAGIC[i];
        i += 1;
    }
    // Payload length 0: an unpatched component has no model.
    b[16] = 0;
    b[17] = 0;
    b[18] = 0;
    b[19] = 0;
    b
}

static MODEL: [u8; CAPACITY] = blank();

/// The payload, read through an opaque pointer so the compiler cannot fold the blank
/// buffer's contents into the code (its length is 0 at compile time, not at run time).
pub fn payload() -> &'static [u8] {
    let base: *const u8 = core::hint::black_box(MODEL.as_ptr());
    let mut len = [0u8; 4];
    for (i, b) in len.iter_mut().enumerate() {
        // SAFETY: `base` points at MODEL, CAPACITY bytes long; HEADER < CAPACITY.
        *b = unsafe { core::ptr::read_volatile(base.add(16 + i)) };
    }
    let len = (u32::from_le_bytes(len) as usize).min(CAPACITY - HEADER);
    // SAFETY: HEADER + len <= CAPACITY, inside MODEL, which is immutable and 'static.
    unsafe { core::slice::from_raw_parts(base.add(HEADER), len) }
}

/// Writes `payload` into a copy of the buffer region `region` (CAPACITY bytes starting
/// with MAGIC). The host's `strata fit` patches the component with this.
pub fn fill(region: &mut [u8], payload: &[u8]) -> Result<(), String> {
    if region.len() != CAPACITY || region[..16] != MAGIC {
        return Err("not a scorecard model buffer".into());
    }
    if payload.len() > CAPACITY - HEADER {
        return Err(format!(
            "model is {} bytes; the component holds at most {}",
            payload.len(),
            CAPACITY - HEADER
        ));
    }
    region[16..HEADER].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    region[HEADER..HEADER + payload.len()].copy_from_slice(payload);
    region[HEADER + payload.len()..].fill(FILLER);
    Ok(())
}
