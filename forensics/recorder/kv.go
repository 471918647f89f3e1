package recorder

import (
	"fmt"

	"github.com/modelforensics/fx/forensics/bundle"
)

// kvSketcher follows GPT-2's KV cache during generation: every block's
// keys and values enter the cache exactly as its hook_k and hook_v see them
// (after any intervention), so a running XXH64 over those rows is the hash
// of the cache's contents, read off at every length the cache reaches.
type kvSketcher struct {
	k, v   []xxh64
	kLen   []int
	vLen   []int
	kAt    []map[int]uint64 // per block: cache length → hash of the keys
	vAt    []map[int]uint64
	layers int
}

func newKVSketcher(layers int) *kvSketcher {
	s := &kvSketcher{k: make([]xxh64, layers), v: make([]xxh64, layers), kLen: make([]int, layers),
		vLen: make([]int, layers), kAt: make([]map[int]uint64, layers), vAt: make([]map[int]uint64, layers), layers: layers}
	for i := range layers {
		s.k[i].reset()
		s.v[i].reset()
		s.kAt[i] = map[int]uint64{}
		s.vAt[i] = map[int]uint64{}
	}
	return s
}

// add takes block layer's new keys (or values) [1, T, H, Dh] at cache
// position offset.
func (s *kvSketcher) add(layer int, isK bool, data []float32, offset, T int) error {
	if layer >= s.layers {
		return fmt.Errorf("%w: KV sketch of block %d in a %d-block model", ErrState, layer, s.layers)
	}
	d, n, at := &s.v[layer], &s.vLen[layer], s.vAt[layer]
	if isK {
		d, n, at = &s.k[layer], &s.kLen[layer], s.kAt[layer]
	}
	if offset != *n {
		return fmt.Errorf("%w: block %d's KV cache grows at %d, after %d cached positions", ErrState, layer, offset, *n)
	}
	d.WriteFloat32s(data)
	*n += T
	at[*n] = d.Sum64()
	return nil
}

// state returns the KV sketch of every block at cache length n.
func (s *kvSketcher) state(n int) (*bundle.KVState, error) {
	st := &bundle.KVState{}
	for i := range s.layers {
		k, okK := s.kAt[i][n]
		v, okV := s.vAt[i][n]
		if !okK || !okV {
			return nil, fmt.Errorf("%w: block %d's KV cache never had length %d", ErrState, i, n)
		}
		st.K = append(st.K, fmt.Sprintf("%016x", k))
		st.V = append(st.V, fmt.Sprintf("%016x", v))
	}
	return st, nil
}
