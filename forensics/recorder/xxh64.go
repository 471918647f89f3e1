package recorder

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// XXH64 primes (xxHash specification).
const (
	prime1 uint64 = 11400714785074694791
	prime2 uint64 = 14029467366897019727
	prime3 uint64 = 1609587929392839161
	prime4 uint64 = 9650029242287828579
	prime5 uint64 = 2870177450012600261
)

// xxh64 is a streaming XXH64 with seed 0. It takes float32 values, hashed
// as their little-endian bytes, without copying them to a byte slice; Sum64
// does not change the state, so a running hash can be read at every step.
type xxh64 struct {
	v1, v2, v3, v4 uint64
	total          uint64
	mem            [32]byte
	n              int // bytes in mem
}

func newXXH64() *xxh64 {
	d := &xxh64{}
	d.reset()
	return d
}

func (d *xxh64) reset() {
	p1 := prime1 // a variable: the sums wrap around, as XXH64 wants
	d.v1 = p1 + prime2
	d.v2 = prime2
	d.v3 = 0
	d.v4 = -p1
	d.total = 0
	d.n = 0
}

func xxRound(acc, input uint64) uint64 {
	acc += input * prime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * prime1
}

func xxMerge(acc, val uint64) uint64 {
	val = xxRound(0, val)
	acc ^= val
	return acc*prime1 + prime4
}

// stripe consumes one 32-byte stripe given as four little-endian lanes.
func (d *xxh64) stripe(a, b, c, e uint64) {
	d.v1 = xxRound(d.v1, a)
	d.v2 = xxRound(d.v2, b)
	d.v3 = xxRound(d.v3, c)
	d.v4 = xxRound(d.v4, e)
}

// Write adds bytes.
func (d *xxh64) Write(p []byte) {
	d.total += uint64(len(p))
	if d.n > 0 {
		c := copy(d.mem[d.n:], p)
		d.n += c
		p = p[c:]
		if d.n < 32 {
			return
		}
		d.flushMem()
	}
	le := binary.LittleEndian
	for len(p) >= 32 {
		d.stripe(le.Uint64(p), le.Uint64(p[8:]), le.Uint64(p[16:]), le.Uint64(p[24:]))
		p = p[32:]
	}
	d.n = copy(d.mem[:], p)
}

func (d *xxh64) flushMem() {
	le := binary.LittleEndian
	d.stripe(le.Uint64(d.mem[:]), le.Uint64(d.mem[8:]), le.Uint64(d.mem[16:]), le.Uint64(d.mem[24:]))
	d.n = 0
}

// WriteFloat32s adds the little-endian bytes of xs.
func (d *xxh64) WriteFloat32s(xs []float32) {
	d.total += 4 * uint64(len(xs))
	le := binary.LittleEndian
	for d.n > 0 && len(xs) > 0 {
		le.PutUint32(d.mem[d.n:], math.Float32bits(xs[0]))
		d.n += 4
		xs = xs[1:]
		if d.n == 32 {
			d.flushMem()
		}
	}
	lane := func(i int) uint64 {
		return uint64(math.Float32bits(xs[i])) | uint64(math.Float32bits(xs[i+1]))<<32
	}
	for len(xs) >= 8 {
		d.stripe(lane(0), lane(2), lane(4), lane(6))
		xs = xs[8:]
	}
	for _, x := range xs {
		le.PutUint32(d.mem[d.n:], math.Float32bits(x))
		d.n += 4
	}
}

// Sum64 returns the hash of everything written so far.
func (d *xxh64) Sum64() uint64 {
	var h uint64
	if d.total >= 32 {
		h = bits.RotateLeft64(d.v1, 1) + bits.RotateLeft64(d.v2, 7) + bits.RotateLeft64(d.v3, 12) + bits.RotateLeft64(d.v4, 18)
		h = xxMerge(h, d.v1)
		h = xxMerge(h, d.v2)
		h = xxMerge(h, d.v3)
		h = xxMerge(h, d.v4)
	} else {
		h = d.v3 + prime5
	}
	h += d.total
	p := d.mem[:d.n]
	le := binary.LittleEndian
	for ; len(p) >= 8; p = p[8:] {
		h ^= xxRound(0, le.Uint64(p))
		h = bits.RotateLeft64(h, 27)*prime1 + prime4
	}
	if len(p) >= 4 {
		h ^= uint64(le.Uint32(p)) * prime1
		h = bits.RotateLeft64(h, 23)*prime2 + prime3
		p = p[4:]
	}
	for _, c := range p {
		h ^= uint64(c) * prime5
		h = bits.RotateLeft64(h, 11) * prime1
	}
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}
