//go:build amd64 && !purego

#include "textflag.h"

// Byte constants, 32 copies each, used as memory operands (see
// special_amd64.s on broadcasting).
DATA trigConsts<>+0x00(SB)/8, $0x2020202020202020 // the first high nibble with a lookup, 2
DATA trigConsts<>+0x08(SB)/8, $0x2020202020202020
DATA trigConsts<>+0x10(SB)/8, $0x2020202020202020
DATA trigConsts<>+0x18(SB)/8, $0x2020202020202020
DATA trigConsts<>+0x20(SB)/8, $0x1010101010101010 // one high nibble
DATA trigConsts<>+0x28(SB)/8, $0x1010101010101010
DATA trigConsts<>+0x30(SB)/8, $0x1010101010101010
DATA trigConsts<>+0x38(SB)/8, $0x1010101010101010
DATA trigConsts<>+0x40(SB)/8, $0x0f0f0f0f0f0f0f0f // a nibble
DATA trigConsts<>+0x48(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA trigConsts<>+0x50(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA trigConsts<>+0x58(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA trigConsts<>+0x60(SB)/8, $0x7f7f7f7f7f7f7f7f // adding it sets the high bit of a nonzero byte
DATA trigConsts<>+0x68(SB)/8, $0x7f7f7f7f7f7f7f7f
DATA trigConsts<>+0x70(SB)/8, $0x7f7f7f7f7f7f7f7f
DATA trigConsts<>+0x78(SB)/8, $0x7f7f7f7f7f7f7f7f
DATA trigConsts<>+0x80(SB)/8, $0x2020202020202020 // OR it: lower case
DATA trigConsts<>+0x88(SB)/8, $0x2020202020202020
DATA trigConsts<>+0x90(SB)/8, $0x2020202020202020
DATA trigConsts<>+0x98(SB)/8, $0x2020202020202020
DATA trigConsts<>+0xa0(SB)/8, $0x6565656565656565 // 'e'
DATA trigConsts<>+0xa8(SB)/8, $0x6565656565656565
DATA trigConsts<>+0xb0(SB)/8, $0x6565656565656565
DATA trigConsts<>+0xb8(SB)/8, $0x6565656565656565
DATA trigConsts<>+0xc0(SB)/8, $0x6363636363636363 // 'c'
DATA trigConsts<>+0xc8(SB)/8, $0x6363636363636363
DATA trigConsts<>+0xd0(SB)/8, $0x6363636363636363
DATA trigConsts<>+0xd8(SB)/8, $0x6363636363636363
DATA trigConsts<>+0xe0(SB)/8, $0x7272727272727272 // 'r'
DATA trigConsts<>+0xe8(SB)/8, $0x7272727272727272
DATA trigConsts<>+0xf0(SB)/8, $0x7272727272727272
DATA trigConsts<>+0xf8(SB)/8, $0x7272727272727272
GLOBL trigConsts<>(SB), RODATA|NOPTR, $256

// UP shifts x up one byte across its lanes, bringing in a zero at byte 0
// (VPERM2I128 $0x08 puts the low lane in the high one, with zero in the
// low one; VPALIGNR $15 takes one byte from it); tmp is clobbered.
#define UP(x, tmp) \
	VPERM2I128	$0x08, x, x, tmp; \
	VPALIGNR	$15, tmp, x, x

// DOWN puts x shifted down one byte, with a zero at byte 31, in dst.
#define DOWN(x, dst) \
	VPERM2I128	$0x81, x, x, dst; \
	VPALIGNR	$1, x, dst, dst

// PLANE computes, from the plane class ids in ids, the positions that
// trigger in one plane (nonzero bytes) into dst, with P, C and N the
// plane's tables; ids and tmp are clobbered.
//
// Byte j of dst is P[id(j-1)] & C[id(j)] & N[id(j+1)]; bytes 0 and 31,
// which lack a neighbour, are zero (UP and DOWN bring in zeros).
#define PLANE(ids, P, C, N, dst, tmp) \
	VPSHUFB	ids, P, dst; \
	UP(dst, tmp); \
	VPSHUFB	ids, C, tmp; \
	VPAND	tmp, dst, dst; \
	VPSHUFB	ids, N, ids; \
	DOWN(ids, tmp); \
	VPAND	tmp, dst, dst

// func trigFillAVX2(k *trigKern, p *byte, n int, trig, sec *uint64)
//
// Windows of 32 bytes at p, p+30, p+60, ... and a last one at p+n-32 (n
// must be at least 32): ORs into the bitmaps at trig and sec (each of at
// least n/64+2 words) bit j for each position j from 1 to n-2 that
// triggers under k, and for each that is a trigSecret position.
TEXT ·trigFillAVX2(SB), NOSPLIT, $0-40
	MOVQ	k+0(FP), DI
	MOVQ	p+8(FP), SI
	MOVQ	n+16(FP), DX
	MOVQ	trig+24(FP), R10
	MOVQ	sec+32(FP), R11
	LEAQ	-32(DX), R8         // the offset of the last window
	XORQ	BX, BX              // the offset of the current window

	VMOVDQU	0x000(DI), Y10      // lut
	VMOVDQU	0x020(DI), Y11
	VMOVDQU	0x040(DI), Y12
	VMOVDQU	0x060(DI), Y13
	VMOVDQU	0x080(DI), Y14
	VMOVDQU	0x0a0(DI), Y15
	VMOVDQU	0x0c0(DI), Y4       // plane 0: P, C, N
	VMOVDQU	0x0e0(DI), Y5
	VMOVDQU	0x100(DI), Y6
	VMOVDQU	0x120(DI), Y7       // plane 1: P, C, N
	VMOVDQU	0x140(DI), Y8
	VMOVDQU	0x160(DI), Y9

	PCALIGN	$32
loop:
	// The class bytes: for y = b-32, b-48, ... (saturating: bytes below
	// 0x20 and from 0x80 stay negative), VPSHUFB looks up the low
	// nibble while y is not negative, that is for every high nibble
	// from 2 up to b's.
	VMOVDQU	(SI)(BX*1), Y0
	VPSUBSB	trigConsts<>+0x00(SB), Y0, Y0
	VPSHUFB	Y0, Y10, Y1
	VPSUBSB	trigConsts<>+0x20(SB), Y0, Y0
	VPSHUFB	Y0, Y11, Y2
	VPXOR	Y2, Y1, Y1
	VPSUBSB	trigConsts<>+0x20(SB), Y0, Y0
	VPSHUFB	Y0, Y12, Y2
	VPXOR	Y2, Y1, Y1
	VPSUBSB	trigConsts<>+0x20(SB), Y0, Y0
	VPSHUFB	Y0, Y13, Y2
	VPXOR	Y2, Y1, Y1
	VPSUBSB	trigConsts<>+0x20(SB), Y0, Y0
	VPSHUFB	Y0, Y14, Y2
	VPXOR	Y2, Y1, Y1
	VPSUBSB	trigConsts<>+0x20(SB), Y0, Y0
	VPSHUFB	Y0, Y15, Y2
	VPXOR	Y2, Y1, Y1

	VPAND	trigConsts<>+0x40(SB), Y1, Y0 // plane 0 ids
	VPSRLW	$4, Y1, Y1
	VPAND	trigConsts<>+0x40(SB), Y1, Y1 // plane 1 ids
	PLANE(Y0, Y4, Y5, Y6, Y2, Y3)
	PLANE(Y1, Y7, Y8, Y9, Y0, Y3)
	VPOR	Y2, Y0, Y0

	// trigSecret, if the table has it (k.secret): "ecr" in any case,
	// shifted like a plane's P and N.
	VMOVDQU	(SI)(BX*1), Y1
	VPOR	trigConsts<>+0x80(SB), Y1, Y1
	VPCMPEQB	trigConsts<>+0xa0(SB), Y1, Y2 // 'e' before
	UP(Y2, Y3)
	VPCMPEQB	trigConsts<>+0xc0(SB), Y1, Y3 // 'c'
	VPAND	Y3, Y2, Y2
	VPCMPEQB	trigConsts<>+0xe0(SB), Y1, Y1 // 'r' after
	DOWN(Y1, Y3)
	VPAND	Y3, Y2, Y2
	VPAND	0x180(DI), Y2, Y2
	VPMOVMSKB	Y2, R12         // the window's secret positions
	VPOR	Y2, Y0, Y0
	VPADDUSB	trigConsts<>+0x60(SB), Y0, Y0
	VPMOVMSKB	Y0, AX          // its triggers; bytes 0 and 31 are zero

	// OR bit j of each mask into the bitmaps at bit BX+j: shifted by
	// BX%64 into word BX/64, and the bits that spill over, into the next
	// word: the mask shifted right by 64-BX%64, done as 1 and then
	// 63-BX%64 so that the count stays below 64.
	MOVQ	BX, R9
	SHRQ	$6, R9
	MOVQ	BX, CX
	ANDQ	$63, CX
	MOVQ	AX, R13
	SHLQ	CX, R13
	ORQ	R13, (R10)(R9*8)
	MOVQ	R12, R13
	SHLQ	CX, R13
	ORQ	R13, (R11)(R9*8)
	NEGQ	CX
	ADDQ	$63, CX
	SHRQ	$1, AX
	SHRQ	CX, AX
	ORQ	AX, 8(R10)(R9*8)
	SHRQ	$1, R12
	SHRQ	CX, R12
	ORQ	R12, 8(R11)(R9*8)

	CMPQ	BX, R8
	JAE	done                // that was the last window
	// The next window, or the last one if that comes first (its positions
	// that the window before had too get the same bits again).
	ADDQ	$30, BX
	CMPQ	BX, R8
	CMOVQHI	R8, BX
	JMP	loop

done:
	VZEROUPPER
	RET
