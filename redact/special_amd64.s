//go:build amd64 && !purego

#include "textflag.h"

// The comparands, 32 copies each (bitmap_amd64.s uses them too), loaded
// with VEX instructions only:
// broadcasting them from an SSE register (MOVD, VPBROADCASTB) cost about
// 100 ns per call on the development machine (an AMD EPYC VM), more than
// scanning a kilobyte.
DATA ·specialConsts+0x00(SB)/8, $0x2222222222222222 // '"'
DATA ·specialConsts+0x08(SB)/8, $0x2222222222222222
DATA ·specialConsts+0x10(SB)/8, $0x2222222222222222
DATA ·specialConsts+0x18(SB)/8, $0x2222222222222222
DATA ·specialConsts+0x20(SB)/8, $0x5c5c5c5c5c5c5c5c // '\\'
DATA ·specialConsts+0x28(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA ·specialConsts+0x30(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA ·specialConsts+0x38(SB)/8, $0x5c5c5c5c5c5c5c5c
DATA ·specialConsts+0x40(SB)/8, $0x1f1f1f1f1f1f1f1f // the largest control character
DATA ·specialConsts+0x48(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA ·specialConsts+0x50(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA ·specialConsts+0x58(SB)/8, $0x1f1f1f1f1f1f1f1f
DATA ·specialConsts+0x60(SB)/8, $0x8080808080808080 // the high bit
DATA ·specialConsts+0x68(SB)/8, $0x8080808080808080
DATA ·specialConsts+0x70(SB)/8, $0x8080808080808080
DATA ·specialConsts+0x78(SB)/8, $0x8080808080808080
DATA ·specialConsts+0x80(SB)/8, $0x2020202020202020 // the smallest other byte
DATA ·specialConsts+0x88(SB)/8, $0x2020202020202020
DATA ·specialConsts+0x90(SB)/8, $0x2020202020202020
DATA ·specialConsts+0x98(SB)/8, $0x2020202020202020
GLOBL ·specialConsts(SB), RODATA|NOPTR, $160

// func specialBlocksAVX2(p *byte, n int, high bool) int
//
// Returns the offset of the first byte in the whole 32-byte blocks of
// p[0:n] that is '"', '\\' or below 0x20 or, if high, at least 0x80; if
// there is none, the length of those blocks (n rounded down to 32).
TEXT ·specialBlocksAVX2(SB), NOSPLIT, $0-32
	MOVQ	p+0(FP), SI
	MOVQ	n+8(FP), CX
	MOVBLZX	high+16(FP), DX
	ANDQ	$~31, CX            // whole blocks only
	XORQ	BX, BX              // offset of the current block

	VMOVDQU	·specialConsts+0x00(SB), Y1
	VMOVDQU	·specialConsts+0x20(SB), Y2
	VMOVDQU	·specialConsts+0x40(SB), Y3
	VPXOR	Y6, Y6, Y6          // the high bits to report: none,
	TESTL	DX, DX
	JZ	loop
	VMOVDQU	·specialConsts+0x60(SB), Y6 // or all

	PCALIGN	$32
loop:
	CMPQ	BX, CX
	JAE	done
	VMOVDQU	(SI)(BX*1), Y0
	VPCMPEQB	Y1, Y0, Y4  // '"'
	VPCMPEQB	Y2, Y0, Y5  // '\\'
	VPOR	Y4, Y5, Y4
	VPMINUB	Y3, Y0, Y5      // min(b, 0x1f) == b exactly when b <= 0x1f
	VPCMPEQB	Y0, Y5, Y5
	VPOR	Y4, Y5, Y4
	VPAND	Y6, Y0, Y5      // b & 0x80, if high
	VPOR	Y4, Y5, Y4      // the high bit of a byte is now set if it is special
	VPTEST	Y4, Y4
	JNZ	found
	ADDQ	$32, BX
	JMP	loop

found:
	VPMOVMSKB	Y4, AX
	BSFL	AX, AX
	ADDQ	AX, BX

done:
	VZEROUPPER
	MOVQ	BX, ret+24(FP)
	RET
