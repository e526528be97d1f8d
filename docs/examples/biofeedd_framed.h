/* biofeedd framed serial protocol, version 1: a frame encoder for firmware.
 * Specification: docs/serial-protocol.md in the biofeedd repository. Portable C99, no malloc.
 * SPDX-License-Identifier: MIT */
#ifndef BIOFEEDD_FRAMED_H
#define BIOFEEDD_FRAMED_H

#include <stddef.h>
#include <stdint.h>

#define BIOFEEDD_VERSION 1u
/* Longest decoded frame, CRC included; biofeedd refuses longer ones. */
#define BIOFEEDD_MAX_FRAME 2048u
/* Room for the encoded frame and its 0x00 delimiter. */
#define BIOFEEDD_MAX_ENCODED (BIOFEEDD_MAX_FRAME + BIOFEEDD_MAX_FRAME / 254u + 2u)

/* Sample types: little-endian on the wire. */
enum biofeedd_type { BIOFEEDD_I16 = 0, BIOFEEDD_I24 = 1, BIOFEEDD_I32 = 2, BIOFEEDD_F32 = 3 };
/* CRC-16/CCITT-FALSE (flags bit 0 clear) or CRC-32/ISO-HDLC (flags bit 0 set). */
enum biofeedd_crc { BIOFEEDD_CRC16 = 0, BIOFEEDD_CRC32 = 1 };

/* One channel's consecutive samples. `samples` points to `count` values of type int16_t
 * (I16), int32_t (I24: keep within -8388608..8388607; I32) or float (F32). */
typedef struct {
    uint8_t channel;
    uint8_t type;
    uint8_t count;
    uint32_t first_index; /* device sample index of samples[0], per channel, wrapping */
    const void *samples;
} biofeedd_block;

/* Encode one frame into `out`: COBS bytes, then the 0x00 delimiter. `scratch` holds the
 * decoded frame while it is built (BIOFEEDD_MAX_FRAME bytes is always enough). Returns the
 * number of bytes written to `out` (send them as they are), or 0 if the frame does not fit
 * in `scratch`, `out` or BIOFEEDD_MAX_FRAME, or a block has an unknown type. */
size_t biofeedd_encode_frame(uint16_t sequence, const biofeedd_block *blocks, uint8_t n_blocks,
                             enum biofeedd_crc crc, uint8_t *scratch, size_t scratch_len,
                             uint8_t *out, size_t out_len);

uint16_t biofeedd_crc16(const uint8_t *data, size_t len);
uint32_t biofeedd_crc32(const uint8_t *data, size_t len);

#endif
