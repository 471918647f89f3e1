package transformer

import "github.com/modelforensics/fx/engine"

// KVCache holds GPT-2's attention keys and values of the tokens seen so far,
// so a generation step runs only the new tokens.
type KVCache struct {
	// Len is the number of cached positions.
	Len    int
	layers []kvLayer
	valid  []int32 // [B, Len] key validity; nil when every key is real
}

// kvLayer is one block's cached keys and values, [B, Len, H, Dh].
type kvLayer struct {
	K, V *engine.Tensor
}

// NewKVCache returns an empty cache for the model.
func (m *GPT2) NewKVCache() *KVCache {
	return &KVCache{layers: make([]kvLayer, len(m.H))}
}

// Keys returns block i's cached keys [B, Len, H, Dh], or nil when empty.
func (c *KVCache) Keys(i int) *engine.Tensor { return c.layers[i].K }

// Values returns block i's cached values [B, Len, H, Dh], or nil when empty.
func (c *KVCache) Values(i int) *engine.Tensor { return c.layers[i].V }

// append adds this step's k and v and returns the keys and values of every
// position so far.
func (l *kvLayer) append(b engine.Backend, k, v *engine.Tensor) (*engine.Tensor, *engine.Tensor) {
	if l.K == nil {
		l.K, l.V = k, v
	} else {
		l.K, l.V = b.Concat(l.K, k), b.Concat(l.V, v)
	}
	return l.K, l.V
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
