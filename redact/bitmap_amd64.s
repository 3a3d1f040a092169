//go:build amd64 && !purego

#include "textflag.h"

// The comparands, 32 copies each, loaded with VEX instructions only:
// broadcasting them from an SSE register (MOVD, VPBROADCASTB) cost about
// 100 ns per call on the development machine (an AMD EPYC VM), more than
// scanning a kilobyte.
DATA bitmapConsts<>+0x00(SB)/8, $0x2222222222222222 // '"'
DATA bitmapConsts<>+0x08(SB)/8, $0x2222222222222222
DATA bitmapConsts<>+0x10(SB)/8, $0x2222222222222222
DATA bitmapConsts<>+0x18(SB)/8, $0x2222222222222222
DATA bitmapConsts<>+0x20(SB)/8, $0x5c5c5c5c5c5c5c5c // '\\'
DATA bitmapConsts<>+0x28(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA bitmapConsts<>+0x30(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA bitmapConsts<>+0x38(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA bitmapConsts<>+0x40(SB)/8, $0x1f1f1f1f1f1f1f1f // the largest control character
DATA bitmapConsts<>+0x48(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA bitmapConsts<>+0x50(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA bitmapConsts<>+0x58(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA bitmapConsts<>+0x60(SB)/8, $0x2020202020202020 // the smallest other byte
DATA bitmapConsts<>+0x68(SB)/8, $0x2020202020202020
DATA bitmapConsts<>+0x70(SB)/8, $0x2020202020202020
DATA bitmapConsts<>+0x78(SB)/8, $0x2020202020202020
GLOBL bitmapConsts<>(SB), RODATA|NOPTR, $128

// SPECIAL sets the high bit of each byte of Y0 that is '"', '\\' or
// below 0x20, in Y4; it clobbers Y5. Y1-Y3 hold the comparands.
#define SPECIAL(Y0, Y4, Y5) \
	VPCMPEQB	Y1, Y0, Y4 \
	VPCMPEQB	Y2, Y0, Y5 \
	VPOR	Y4, Y5, Y4 \
	VPMINUB	Y3, Y0, Y5 \
	VPCMPEQB	Y0, Y5, Y5 \
	VPOR	Y4, Y5, Y4

// SPECIALHI is SPECIAL that also sets it for bytes at least 0x80: those
// and the control characters are the bytes below 0x20 as signed bytes
// (Y3 holds 0x20s).
#define SPECIALHI(Y0, Y4, Y5) \
	VPCMPEQB	Y1, Y0, Y4 \
	VPCMPEQB	Y2, Y0, Y5 \
	VPOR	Y4, Y5, Y4 \
	VPCMPGTB	Y0, Y3, Y5 \
	VPOR	Y4, Y5, Y4

// STORE writes the word of the high bits of Y4 (bytes 0-31) and Y8
// (bytes 32-63) to (DI).
#define STORE \
	VPMOVMSKB	Y4, AX \
	VPMOVMSKB	Y8, BX \
	SHLQ	$32, BX \
	ORQ	BX, AX \
	MOVQ	AX, (DI)

// func specialBitmapAVX2(p *byte, n int, tail *byte, dst *uint64, high bool)
//
// Writes one word per 64 bytes to dst: bit j of dst[k] is set if byte
// 64k+j is '"', '\\' or below 0x20 or, if high, at least 0x80. It reads
// the whole 64-byte blocks of p[0:n] (n rounded down to 64), and then the
// 64 bytes at tail for the word after them.
TEXT ·specialBitmapAVX2(SB), NOSPLIT, $0-33
	MOVQ	p+0(FP), SI
	MOVQ	n+8(FP), CX
	MOVQ	tail+16(FP), R8
	MOVQ	dst+24(FP), DI
	MOVBLZX	high+32(FP), DX
	ANDQ	$~63, CX            // whole blocks only
	ADDQ	SI, CX              // their end

	VMOVDQU	bitmapConsts<>+0x00(SB), Y1
	VMOVDQU	bitmapConsts<>+0x20(SB), Y2
	TESTL	DX, DX
	JNZ	high
	VMOVDQU	bitmapConsts<>+0x40(SB), Y3

	PCALIGN	$32
loop:
	CMPQ	SI, CX
	JAE	tail
	VMOVDQU	(SI), Y0
	VMOVDQU	32(SI), Y7
	SPECIAL(Y0, Y4, Y5)
	SPECIAL(Y7, Y8, Y9)
	STORE
	ADDQ	$64, SI
	ADDQ	$8, DI
	JMP	loop

tail:
	VMOVDQU	(R8), Y0
	VMOVDQU	32(R8), Y7
	SPECIAL(Y0, Y4, Y5)
	SPECIAL(Y7, Y8, Y9)
	STORE
	VZEROUPPER
	RET

high:
	VMOVDQU	bitmapConsts<>+0x60(SB), Y3

	PCALIGN	$32
loophi:
	CMPQ	SI, CX
	JAE	tailhi
	VMOVDQU	(SI), Y0
	VMOVDQU	32(SI), Y7
	SPECIALHI(Y0, Y4, Y5)
	SPECIALHI(Y7, Y8, Y9)
	STORE
	ADDQ	$64, SI
	ADDQ	$8, DI
	JMP	loophi

tailhi:
	VMOVDQU	(R8), Y0
	VMOVDQU	32(R8), Y7
	SPECIALHI(Y0, Y4, Y5)
	SPECIALHI(Y7, Y8, Y9)
	STORE
	VZEROUPPER
	RET
