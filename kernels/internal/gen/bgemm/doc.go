// Command bgemm writes kernels/bgemm_amd64.s: the AVX-512 BF16 kernels of
// PackedBF16. Go's assembler does not know VDPBF16PS, VCVTNE2PS2BF16 or
// VCVTNEPS2BF16, so they are emitted as BYTE directives, encoded here by
// evex512 (EVEX prefix, ModRM, SIB and the disp8*N compressed displacement,
// Intel SDM vol. 2, 2.7), with the mnemonic in a comment. evex512 was
// checked against Go's own encoding of VFMADD231PS (same EVEX format,
// register and memory, broadcast, SIB, R12/R13 bases) and its output
// against binutils' disassembler; the instructions' behaviour is checked by
// the unit tests.
//
// It is run by go generate in kernels/ (the //go:generate line of
// kernels/bgemm_amd64.go) and writes the file there.
package main
