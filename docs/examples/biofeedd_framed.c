/* biofeedd framed serial protocol, version 1: the reference frame encoder.
 * Specification: docs/serial-protocol.md. Portable C99, no malloc; an Arduino sketch calls
 * biofeedd_encode_frame() and writes the bytes with Serial.write(buf, n).
 * Build the self-test printer: cc -std=c99 -DBIOFEEDD_FRAMED_MAIN biofeedd_framed.c
 * SPDX-License-Identifier: MIT */
#include "biofeedd_framed.h"

#include <string.h>

uint16_t biofeedd_crc16(const uint8_t *data, size_t len) {
    /* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR. */
    uint16_t crc = 0xFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint16_t)data[i] << 8);
        for (int b = 0; b < 8; b++) {
            crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
        }
    }
    return crc;
}

uint32_t biofeedd_crc32(const uint8_t *data, size_t len) {
    /* CRC-32/ISO-HDLC: poly 0x04C11DB7 reflected (0xEDB88320), init and final XOR 0xFFFFFFFF. */
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        for (int b = 0; b < 8; b++) {
            crc = (crc & 1u) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
    }
    return crc ^ 0xFFFFFFFFu;
}

static void put_le(uint8_t *p, uint32_t v, int n) {
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static size_t sample_size(uint8_t type) {
    switch (type) {
    case BIOFEEDD_I16: return 2;
    case BIOFEEDD_I24: return 3;
    case BIOFEEDD_I32: return 4;
    case BIOFEEDD_F32: return 4;
    default: return 0;
    }
}

/* COBS: `out` receives no zero byte; returns the encoded length, 0 if out_len is too small. */
static size_t cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_len) {
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    if (out_len < 1) return 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != 0) {
            if (o >= out_len) return 0;
            out[o++] = in[i];
            code++;
        }
        if (in[i] == 0 || code == 0xFF) {
            out[code_at] = code;
            code = 1;
            if (in[i] != 0 && i + 1 == len) return o; /* a full block ends the data */
            if (o >= out_len) return 0;
            code_at = o++;
        }
    }
    out[code_at] = code;
    return o;
}

size_t biofeedd_encode_frame(uint16_t sequence, const biofeedd_block *blocks, uint8_t n_blocks,
                             enum biofeedd_crc crc, uint8_t *scratch, size_t scratch_len,
                             uint8_t *out, size_t out_len) {
    size_t limit = scratch_len < BIOFEEDD_MAX_FRAME ? scratch_len : BIOFEEDD_MAX_FRAME;
    size_t crc_len = crc == BIOFEEDD_CRC32 ? 4 : 2;
    size_t n = 5;
    if (limit < n + crc_len) return 0;
    scratch[0] = BIOFEEDD_VERSION;
    scratch[1] = crc == BIOFEEDD_CRC32 ? 1u : 0u;
    put_le(scratch + 2, sequence, 2);
    scratch[4] = n_blocks;
    for (uint8_t b = 0; b < n_blocks; b++) {
        const biofeedd_block *blk = &blocks[b];
        size_t size = sample_size(blk->type);
        if (size == 0 || n + 7 + size * blk->count + crc_len > limit) return 0;
        scratch[n] = blk->channel;
        scratch[n + 1] = blk->type;
        scratch[n + 2] = blk->count;
        put_le(scratch + n + 3, blk->first_index, 4);
        n += 7;
        for (uint8_t k = 0; k < blk->count; k++) {
            uint32_t bits;
            if (blk->type == BIOFEEDD_I16) {
                bits = (uint32_t)(uint16_t)((const int16_t *)blk->samples)[k];
            } else if (blk->type == BIOFEEDD_F32) {
                float f = ((const float *)blk->samples)[k];
                memcpy(&bits, &f, 4); /* IEEE 754 single, as every Arduino core stores it */
            } else {
                bits = (uint32_t)((const int32_t *)blk->samples)[k];
            }
            put_le(scratch + n, bits, (int)size);
            n += size;
        }
    }
    if (crc == BIOFEEDD_CRC32) {
        put_le(scratch + n, biofeedd_crc32(scratch, n), 4);
    } else {
        put_le(scratch + n, biofeedd_crc16(scratch, n), 2);
    }
    n += crc_len;
    size_t e = cobs_encode(scratch, n, out, out_len);
    if (e == 0 || e >= out_len) return 0;
    out[e] = 0x00;
    return e + 1;
}

#ifdef BIOFEEDD_FRAMED_MAIN
#include <float.h>
#include <stdio.h>

/* Prints the encoded bytes of the frames below in hex, one frame per line; biofeedd's test
 * (tests/framed_c_encoder.rs) builds the same frames in Rust and compares byte for byte. */
static void show(uint16_t seq, const biofeedd_block *blocks, uint8_t n, enum biofeedd_crc crc) {
    static uint8_t scratch[BIOFEEDD_MAX_FRAME], out[BIOFEEDD_MAX_ENCODED];
    size_t len = biofeedd_encode_frame(seq, blocks, n, crc, scratch, sizeof scratch, out, sizeof out);
    for (size_t i = 0; i < len; i++) printf("%02x", out[i]);
    printf("\n");
}

int main(void) {
    static const int16_t example[] = {100, -100};
    static const int16_t i16s[] = {0, 1, -1, 32767, -32768};
    static const int32_t i24s[] = {0, 8388607, -8388608, -1, 256};
    static const int32_t i32s[] = {INT32_MIN, INT32_MAX, 0, 65536};
    static const float f32s[] = {0.0f, -1.5f, 1.2345f, 1e-38f, FLT_MAX, -0.0f};
    static int16_t ones[200], zeros[200];
    for (int i = 0; i < 200; i++) { ones[i] = 0x0101; zeros[i] = 0; }

    biofeedd_block b0[] = {{0, BIOFEEDD_I16, 2, 1000, example}};
    show(42, b0, 1, BIOFEEDD_CRC16);
    biofeedd_block b1[] = {{0, BIOFEEDD_I16, 5, 0, i16s}};
    show(0, b1, 1, BIOFEEDD_CRC16);
    biofeedd_block b2[] = {{1, BIOFEEDD_I24, 5, 4294967295u, i24s}, {2, BIOFEEDD_I32, 4, 100, i32s}};
    show(1, b2, 2, BIOFEEDD_CRC32);
    biofeedd_block b3[] = {{3, BIOFEEDD_F32, 6, 7, f32s}, {200, BIOFEEDD_I16, 0, 0, i16s}};
    show(65535, b3, 2, BIOFEEDD_CRC16);
    show(2, NULL, 0, BIOFEEDD_CRC32);
    biofeedd_block b5[] = {{255, BIOFEEDD_I16, 200, 123456, ones}, {0, BIOFEEDD_I16, 200, 0, zeros}};
    show(513, b5, 2, BIOFEEDD_CRC32);
    biofeedd_block b6[] = {{9, BIOFEEDD_I16, 127, 1, ones}};
    show(3, b6, 1, BIOFEEDD_CRC16);
    return 0;
}
#endif
