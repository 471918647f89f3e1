package transformer

import "github.com/modelforensics/fx/engine"

// KVCache holds GPT-2's attention keys and values of the tokens seen so far,
// so a generation step runs only the new tokens.
type KVCache struct {
	// Len is the number of cached positions.
	Len    int
	layers []kvLayer
	valid  []int32 // [B, Len] key validity; nil when every key is real
	// at, while a Decoder's step runs, is the step's position in the
	// backend's memory: the keys and values are written there
	// (SetRowsAt) and attention reads the whole capacity, masked by it.
	at *engine.Tensor
}

// kvLayer is one block's cached keys and values, [B, Len, H, Dh]. With
// one sequence they are views of the first Len rows of capacity buffers
// [1, Cap, H·Dh] that each step writes its rows into (Edit), so a step
// copies its own keys and values only, not the whole cache; the capacity
// doubles when full (at most the model's positions). With several
// sequences each step concatenates.
type kvLayer struct {
	K, V       *engine.Tensor
	capK, capV *engine.Tensor
	maxLen     int // the model's positions: the largest capacity
}

// NewKVCache returns an empty cache for the model.
func (m *GPT2) NewKVCache() *KVCache {
	c := &KVCache{layers: make([]kvLayer, len(m.H))}
	for i := range c.layers {
		c.layers[i].maxLen = m.Wpe.Dim(0)
	}
	return c
}

// Keys returns block i's cached keys [B, Len, H, Dh], or nil when empty.
func (c *KVCache) Keys(i int) *engine.Tensor { return c.layers[i].K }

// Values returns block i's cached values [B, Len, H, Dh], or nil when empty.
func (c *KVCache) Values(i int) *engine.Tensor { return c.layers[i].V }

// minKVCapacity is the first capacity of a one-sequence cache, in
// positions.
const minKVCapacity = 16

// append adds this step's k and v [B, T, H, Dh] and returns the keys and
// values of every position so far. With at (a Decoder's step: one
// sequence, a capacity that suffices) it writes them at the position at
// holds and returns the whole capacity, whose rows past the step the
// attention mask forbids.
func (l *kvLayer) append(b engine.Backend, k, v, at *engine.Tensor) (*engine.Tensor, *engine.Tensor) {
	if at != nil {
		H, Dh := k.Dim(2), k.Dim(3)
		b.SetRowsAt(l.capK, k, at)
		b.SetRowsAt(l.capV, v, at)
		c := l.capK.Dim(1)
		return b.View(l.capK, 1, c, H, Dh), b.View(l.capV, 1, c, H, Dh)
	}
	if k.Dim(0) != 1 {
		if l.K == nil {
			l.K, l.V = k, v
		} else {
			l.K, l.V = b.Concat(l.K, k), b.Concat(l.V, v)
		}
		return l.K, l.V
	}
	T, H, Dh := k.Dim(1), k.Dim(2), k.Dim(3)
	L := 0
	if l.K != nil {
		L = l.K.Dim(1)
	}
	if l.capK == nil || l.capK.Dim(1) < L+T {
		c := min(max(2*(L+T), minKVCapacity), max(l.maxLen, L+T))
		capK, capV := b.Zeros(1, c, H*Dh), b.Zeros(1, c, H*Dh)
		if L > 0 {
			writeRows(b, capK, l.K, 0)
			writeRows(b, capV, l.V, 0)
		}
		l.capK, l.capV = capK, capV
	}
	writeRows(b, l.capK, k, L)
	writeRows(b, l.capV, v, L)
	l.K, l.V = b.View(l.capK, 1, L+T, H, Dh), b.View(l.capV, 1, L+T, H, Dh)
	return l.K, l.V
}

// writeRows writes src [1, T, ...] into rows at.. of dst [1, Cap, ...] in
// place.
func writeRows(b engine.Backend, dst, src *engine.Tensor, at int) {
	n := src.Len()
	row := dst.Len() / dst.Dim(1)
	b.Edit(dst, engine.Edit{Mode: engine.EditSet, Dims: [engine.MaxEditDims]int{1, 1, 1, 1, n},
		Strides: [engine.MaxEditDims]int{0, 0, 0, 0, 1}, Offset: at * row,
		Source: src, SourceStrides: [engine.MaxEditDims]int{0, 0, 0, 0, 1}})
}

// appendValid returns the key-validity mask [B, Len+T] after in's tokens
// join the cache, or nil when every key is real.
func (c *KVCache) appendValid(in Batch) []int32 {
	if c.valid == nil && in.Valid == nil {
		return nil
	}
	B, T, L := in.B, in.T, c.Len
	out := make([]int32, B*(L+T))
	for bi := range B {
		row := out[bi*(L+T) : (bi+1)*(L+T)]
		for j := range L {
			row[j] = 1
			if c.valid != nil {
				row[j] = c.valid[bi*L+j]
			}
		}
		for j := range T {
			row[L+j] = 1
			if in.Valid != nil {
				row[L+j] = in.Valid[bi*T+j]
			}
		}
	}
	return out
}
