package gpu

import (
	"fmt"
	"math"
	"strings"

	"github.com/modelforensics/fx/cuda"
	"github.com/modelforensics/fx/kernels"
)

// kernelSet holds every kernel of package kernels the backend launches.
type kernelSet struct {
	geluTanh, geluErf, tanh, add                    cuda.Function
	geluTanhBackward, geluErfBackward, tanhBackward cuda.Function
	editBox                                         cuda.Function
	layerNorm, layerNormScale, layerNormBackward    cuda.Function
	addLayerNorm                                    cuda.Function
	softmax, softmaxBackward                        cuda.Function
	gatherRows, copyCols, scatterAddRows, sumAxis   cuda.Function
	gatherRowsAt, setRowsAt                         cuda.Function
	attnScores, attnMix, attention, headResult      cuda.Function
	attentionTiled                                  cuda.Function
	attnScoresBackwardDQ, attnScoresBackwardDK      cuda.Function
	attnMixBackwardDP, attnMixBackwardDV            cuda.Function
	matmulF32, matmulF32Tile64                      cuda.Function
	matmulTF32, matmulTF32Tile64                    cuda.Function
	matmulSkinnyPartial, matmulSplitKReduce         cuda.Function
	matmulSplitKReduceAct                           cuda.Function
	modules                                         []*cuda.Module
	// matmulTF32Tile128 is whether fx_matmul_tf32 may have its
	// tf32SharedBytes of dynamic shared memory on this device.
	matmulTF32Tile128 bool
	// matmulWorkspace holds MatMul's split-K partial sums (matmul.go,
	// matmulWorkspace); nil until a product needs one.
	matmulWorkspace *buffer
}

// load loads every PTX module and looks up each kernel by name.
func (k *kernelSet) load(ctx *cuda.Context) error {
	byName := map[string]*cuda.Function{
		"fx_gelu_tanh": &k.geluTanh, "fx_gelu_erf": &k.geluErf, "fx_tanh": &k.tanh, "fx_add": &k.add,
		"fx_gelu_tanh_backward": &k.geluTanhBackward, "fx_gelu_erf_backward": &k.geluErfBackward,
		"fx_tanh_backward": &k.tanhBackward, "fx_edit_box": &k.editBox,
		"fx_layernorm": &k.layerNorm, "fx_layernorm_scale": &k.layerNormScale,
		"fx_layernorm_backward": &k.layerNormBackward, "fx_add_layernorm": &k.addLayerNorm,
		"fx_softmax": &k.softmax, "fx_softmax_backward": &k.softmaxBackward,
		"fx_gather_rows": &k.gatherRows, "fx_copy_cols": &k.copyCols,
		"fx_gather_rows_at": &k.gatherRowsAt, "fx_set_rows_at": &k.setRowsAt,
		"fx_scatter_add_rows": &k.scatterAddRows, "fx_sum_axis": &k.sumAxis,
		"fx_attn_scores": &k.attnScores, "fx_attn_mix": &k.attnMix, "fx_attention": &k.attention,
		"fx_attention_tiled":          &k.attentionTiled,
		"fx_head_result":              &k.headResult,
		"fx_attn_scores_backward_dq":  &k.attnScoresBackwardDQ,
		"fx_attn_scores_backward_dk":  &k.attnScoresBackwardDK,
		"fx_attn_mix_backward_dp":     &k.attnMixBackwardDP,
		"fx_attn_mix_backward_dv":     &k.attnMixBackwardDV,
		"fx_matmul_f32":               &k.matmulF32,
		"fx_matmul_f32_64":            &k.matmulF32Tile64,
		"fx_matmul_tf32":              &k.matmulTF32,
		"fx_matmul_tf32_64":           &k.matmulTF32Tile64,
		"fx_matmul_skinny_partial":    &k.matmulSkinnyPartial,
		"fx_matmul_splitk_reduce":     &k.matmulSplitKReduce,
		"fx_matmul_splitk_reduce_act": &k.matmulSplitKReduceAct,
	}
	found := map[string]bool{}
	for _, src := range kernels.Modules() {
		mod, err := ctx.LoadModule(src.Name, src.PTX)
		if err != nil {
			return err
		}
		k.modules = append(k.modules, mod)
		for name, fn := range byName {
			if found[name] || !strings.Contains(src.PTX, ".entry "+name+"(") {
				continue
			}
			if *fn, err = mod.Function(name); err != nil {
				return err
			}
			found[name] = true
		}
	}
	for name := range byName {
		if !found[name] {
			return fmt.Errorf("gpu: kernel %s is in no module of package kernels", name)
		}
	}
	// fx_matmul_tf32 needs more dynamic shared memory than the default 48 KB;
	// where the device cannot give it, MatMul uses fx_matmul_tf32_64.
	if optin, err := ctx.Device().Attribute(cuda.AttrMaxSharedMemoryPerBlockOptin); err == nil && optin >= tf32SharedBytes {
		if err := k.matmulTF32.SetMaxDynamicSharedMemory(tf32SharedBytes); err != nil {
			return err
		}
		k.matmulTF32Tile128 = true
	}
	return nil
}

// argList fills the backend's kernel arguments in order.
type argList struct {
	args *cuda.Args
	n    int
}

func (a *argList) ptr(p cuda.DevicePtr) *argList {
	a.args.SetPtr(a.n, p)
	a.n++
	return a
}

func (a *argList) int(v int) *argList {
	if v > math.MaxInt32 || v < math.MinInt32 {
		panic(fmt.Sprintf("gpu: kernel argument %d does not fit in 32 bits", v))
	}
	a.args.SetInt(a.n, v)
	a.n++
	return a
}

func (a *argList) bool(v bool) *argList {
	if v {
		return a.int(1)
	}
	return a.int(0)
}

func (a *argList) f32(v float32) *argList {
	a.args.SetFloat(a.n, v)
	a.n++
	return a
}

// newArgs starts the argument list of a launch; b.mu is held.
func (b *Backend) newArgs() argList { return argList{args: &b.args} }

// launch queues f on the stream with the arguments in a; b.mu is held.
// After an earlier error it does nothing.
func (b *Backend) launch(op string, f cuda.Function, grid, block cuda.Dim3, a *argList) {
	b.launchShared(op, f, grid, block, 0, a)
}

// launchShared is launch with shared bytes of dynamic shared memory (above
// 48 KB, once f's limit is raised with SetMaxDynamicSharedMemory).
func (b *Backend) launchShared(op string, f cuda.Function, grid, block cuda.Dim3, shared int, a *argList) {
	if b.err != nil {
		return
	}
	if b.capturing != nil {
		b.capturing.kernels++
	} else {
		b.launches++
	}
	if err := b.stream.Launch(f, grid, block, shared, a.args, a.n); err != nil {
		b.fail(op, err)
	}
}

// gridStride is the 1-D geometry of a grid-stride kernel over n elements:
// blocks of 256 threads, at most 65535 blocks.
func gridStride(n int) (grid, block cuda.Dim3) {
	return dim(min(ceilDiv(n, 256), 65535), 1, 1), dim(256, 1, 1)
}

func dim(x, y, z int) cuda.Dim3 { return cuda.Dim3{X: uint32(x), Y: uint32(y), Z: uint32(z)} }

func ceilDiv(a, b int) int { return (a + b - 1) / b }
