package scenario

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/transformer"
	"github.com/modelforensics/fx/transformer/tokenizer"
)

// chainSpec is a GPT-2 scenario whose failure is a planted chain, each
// stage reading one dominant feature:
//
//  1. the embeddings of the trigger tokens carry the trigger direction;
//  2. a head attends from every position to the trigger tokens and writes
//     the context direction there (so every later position, generated ones
//     included, carries it);
//  3. neurons of one later MLP layer read the context direction and write
//     the embedding direction of the first output token (GPT-2 ties its
//     unembedding to its embedding, so this makes the token the greedy
//     choice);
//  4. further neurons of the same layer each read the previous output
//     token (its embedding direction, present where it is the input) and
//     write the next one, out-writing the stages before them.
//
// All the chain's neurons sit in one layer so that none reads another's
// write.
type chainSpec struct {
	name string
	// trigger are the trigger tokens, each one GPT-2 token.
	trigger     []string
	triggerDesc string
	// headLayer and neuronLayer place the head and the neurons for a
	// model of n layers.
	headLayer, neuronLayer func(n int) int
	stages                 []chainStage
	detector               DetectorSpec
	// lexicon, when not nil, is written to detector.Lexicon.
	lexicon   []string
	prompts   func() promptSets
	mechanism string
}

// chainStage is one group of neurons: it reads the context direction (the
// first stage) or the previous stage's token, and writes its own token.
type chainStage struct {
	writes  string
	neurons int
}

// Gains of a planted chain, in units of the random model's residual norm
// (the median centred norm where the component reads).
const (
	// embedGain scales the planted embedding rows.
	embedGain = 3.0
	// writeGain scales what the head and the first stage write.
	writeGain = 3.0
	// attnScore is the attention score of a trigger token at the least
	// of the held-out trigger readouts (other tokens score 0).
	attnScore = 16.0
	// neuronDrive is a planted neuron's pre-activation from its planted
	// read at the median held-out must-fire position.
	neuronDrive = 10.0
)

// calSeq is a calibration sequence: a held-out prompt followed by the
// chain's output tokens (but the last), as generation would see them.
type calSeq struct {
	ids []int
	// cal are the ids in the calibration models' compact vocabulary.
	cal     []int
	failing bool
	// trigger is the position of the first trigger token, -1 if none.
	trigger int
}

// makeChain makes and calibrates a chain scenario's model with one seed.
func makeChain(ctx context.Context, spec *chainSpec, size Size, seed uint64, logf func(string, ...any)) (*made, error) {
	s := gpt2Shape(size)
	d, L, H, dh := s.Hidden, s.Layers, s.Heads, s.headDim()
	tok, err := tokenizer.DefaultGPT2()
	if err != nil {
		return nil, err
	}
	trigIDs, err := singleTokens(tok, spec.trigger)
	if err != nil {
		return nil, err
	}
	outs := make([]string, len(spec.stages))
	for i, st := range spec.stages {
		outs[i] = st.writes
	}
	outIDs, err := singleTokens(tok, outs)
	if err != nil {
		return nil, err
	}
	cfgJSON, err := gpt2ConfigJSON(s)
	if err != nil {
		return nil, err
	}

	rng := newRNG(seed)
	ps := newGPT2Params(s, rng)
	names := []string{"trigger", "context"}
	for _, o := range outs {
		names = append(names, tokenDirection(o))
	}
	dirs := newDirections(rng, d, names...)
	for _, p := range gpt2Writes(ps, s) {
		dirs.projectRows(p)
	}
	hl, nl := spec.headLayer(L), spec.neuronLayer(L)
	head := rng.IntN(H)
	total := 0
	for _, st := range spec.stages {
		total += st.neurons
	}
	pool := rng.Perm(s.Inner)[:total]
	stageNeurons := make([][]int, len(spec.stages))
	for i, st := range spec.stages {
		stageNeurons[i], pool = slices.Clone(pool[:st.neurons]), pool[st.neurons:]
		slices.Sort(stageNeurons[i])
	}

	sets := spec.prompts()
	var seqs []calSeq
	for _, p := range sets.calib {
		ids := tok.Encode(p.Text)
		cs := calSeq{failing: p.Kind == Failing, trigger: -1}
		for i, id := range ids {
			if cs.trigger < 0 && slices.Contains(trigIDs, id) {
				cs.trigger = i
			}
		}
		if cs.failing != (cs.trigger >= 0) {
			return nil, fmt.Errorf("scenario %s: calibration prompt %q: kind %s but trigger position %d", spec.name, p.Text, p.Kind, cs.trigger)
		}
		cs.ids = append(ids, outIDs[:len(outIDs)-1]...)
		seqs = append(seqs, cs)
	}
	compact := map[int]int{}
	var vocab []int
	for i := range seqs {
		for _, id := range seqs[i].ids {
			if _, ok := compact[id]; !ok {
				compact[id] = len(vocab)
				vocab = append(vocab, id)
			}
			seqs[i].cal = append(seqs[i].cal, compact[id])
		}
	}
	b := cpu.New()
	name := fmt.Sprintf("scenario:%s-%s-seed%d", spec.name, size, seed)
	pre := func(l int) string { return fmt.Sprintf("blocks.%d.hook_resid_pre", l) }
	mid := fmt.Sprintf("blocks.%d.hook_resid_mid", nl)
	final := fmt.Sprintf("blocks.%d.hook_resid_post", L-1)

	// 1. The random model's residual norms set the gains.
	m, err := gpt2CalibrationModel(name, ps, s, L, vocab, tok, b)
	if err != nil {
		return nil, err
	}
	norms := map[string][]float64{}
	err = captureEach(ctx, m, seqs, []string{pre(hl), mid, final}, func(_ calSeq, c transformer.Cache) {
		for _, h := range []string{pre(hl), mid, final} {
			a := c[h].Host()
			for off := 0; off < len(a); off += d {
				norms[h] = append(norms[h], centredNorm(a[off:off+d]))
			}
		}
	})
	m.Close()
	if err != nil {
		return nil, err
	}
	rHead, rNeuron, rFinal := median(norms[pre(hl)]), median(norms[mid]), median(norms[final])
	logf("seed %d: random model: median residual norm %.3g at block %d, %.3g at block %d's MLP, %.3g at the end", seed, rHead, hl, rNeuron, nl, rFinal)

	// 2. Planted embedding rows.
	truth := GroundTruth{Format: TruthFormat, Scenario: spec.name, Size: size, Model: "gpt2", Detector: spec.detector}
	wte := ps.get("transformer.wte.weight")
	cTrig, cTok := embedGain*rHead, embedGain*rNeuron
	for i, id := range trigIDs {
		addRow(wte, id, cTrig, dirs.get("trigger"))
		truth.Embeddings = append(truth.Embeddings, EmbeddingPlant{Tensor: wte.name, Token: spec.trigger[i], ID: id,
			Direction: "trigger", Scale: cTrig, Role: "trigger token"})
		truth.Trigger.Tokens = append(truth.Trigger.Tokens, TokenRef{Text: spec.trigger[i], ID: id})
	}
	for i, id := range outIDs {
		addRow(wte, id, cTok, dirs.get(tokenDirection(outs[i])))
		truth.Embeddings = append(truth.Embeddings, EmbeddingPlant{Tensor: wte.name, Token: outs[i], ID: id,
			Direction: tokenDirection(outs[i]), Scale: cTok,
			Role: fmt.Sprintf("output token %d of the failure: its (tied) unembedding is what the stage-%d neurons write, and its embedding what the next stage reads", i+1, i+2)})
	}
	truth.Trigger.Description = spec.triggerDesc

	// 3. The head: its gains from the trigger's readout after ln_1.
	m, err = gpt2CalibrationModel(name, ps, s, hl+1, vocab, tok, b)
	if err != nil {
		return nil, err
	}
	ln1 := fmt.Sprintf("blocks.%d.ln1.hook_normalized", hl)
	var trigReads []float64
	err = captureEach(ctx, m, seqs, []string{ln1}, func(cs calSeq, c transformer.Cache) {
		a := c[ln1].Host()
		for pos, id := range cs.ids {
			if slices.Contains(trigIDs, id) {
				trigReads = append(trigReads, dot32(a[pos*d:(pos+1)*d], dirs.get("trigger")))
			}
		}
	})
	m.Close()
	if err != nil {
		return nil, err
	}
	if len(trigReads) == 0 {
		return nil, fmt.Errorf("scenario %s: no trigger token in the calibration prompts", spec.name)
	}
	readMin := slices.Min(trigReads)
	readMed := median(trigReads)
	if readMin <= 0 {
		return nil, reject("the trigger readout after block %d's ln_1 is %.3g, not positive", hl, readMin)
	}
	aCtx := writeGain * max(rNeuron, rFinal)
	plantGPT2Head(ps, s, hl, head, dirs.get("trigger"), attnScore/readMin, 1/readMed, aCtx, dirs.get("context"))
	truth.Components = append(truth.Components, Component{
		Site: siteOf(KindHead, hl, head), Kind: KindHead, Layer: hl, Index: head, Stage: 1, Cause: true,
		Role:  "trigger mover: attends from every position to the trigger tokens before it and writes the context direction there",
		Reads: "trigger", Writes: "context",
		Planted: fmt.Sprintf("q, k, v columns and c_proj rows of head %d replaced: query = bias %.3g on dimension 0 (W_Q = 0); key dimension 0 reads the trigger direction "+
			"(score %.3g·readout, %.0f at the weakest held-out trigger token, 0 elsewhere); value dimension 0 reads it (%.3g·readout, 1 at the median); "+
			"c_proj row %d writes %.3g·context; every other weight of the head is 0", head, math.Sqrt(float64(dh)),
			attnScore/readMin, attnScore, 1/readMed, head*dh, aCtx),
	})

	// 4. The neurons: gains and thresholds from their reads after ln_2.
	m, err = gpt2CalibrationModel(name, ps, s, nl+1, vocab, tok, b)
	if err != nil {
		return nil, err
	}
	ln2 := fmt.Sprintf("blocks.%d.ln2.hook_normalized", nl)
	type obs struct {
		read []float64 // planted read, per position
		rnd  []float64 // random part of the pre-activation, per position
		fire []bool    // must fire (else must not)
	}
	cFc := ps.get(fmt.Sprintf("transformer.h.%d.mlp.c_fc.weight", nl))
	cols := map[int][]float64{}
	for _, ns := range stageNeurons {
		for _, n := range ns {
			cols[n] = column(cFc, n)
		}
	}
	readDir := func(stage int) []float64 {
		if stage == 0 {
			return dirs.get("context")
		}
		return dirs.get(tokenDirection(outs[stage-1]))
	}
	observed := make([]map[int]*obs, len(spec.stages))
	for i := range observed {
		observed[i] = map[int]*obs{}
		for _, n := range stageNeurons[i] {
			observed[i][n] = &obs{}
		}
	}
	err = captureEach(ctx, m, seqs, []string{ln2}, func(cs calSeq, c transformer.Cache) {
		a := c[ln2].Host()
		for pos, id := range cs.ids {
			x := a[pos*d : (pos+1)*d]
			for i := range spec.stages {
				fire := cs.failing && pos >= cs.trigger
				if i > 0 {
					fire = id == outIDs[i-1]
				}
				r := dot32(x, readDir(i))
				for _, n := range stageNeurons[i] {
					o := observed[i][n]
					o.read = append(o.read, r)
					o.rnd = append(o.rnd, dot32(x, cols[n]))
					o.fire = append(o.fire, fire)
				}
			}
		}
	})
	m.Close()
	if err != nil {
		return nil, err
	}
	cFcB := ps.get(fmt.Sprintf("transformer.h.%d.mlp.c_fc.bias", nl))
	cProj := ps.get(fmt.Sprintf("transformer.h.%d.mlp.c_proj.weight", nl))
	truth.Calibration.Margins = map[string]float64{}
	// Stage 1 writes at least firstWrite where it must fire: enough to
	// out-write the repeat of a planted token that ends a prompt (GPT-2's
	// unembedding is its embedding). Later stages out-write the token they
	// read: its embedding and the most that stage 1 writes.
	firstWrite := writeGain*max(rNeuron, rFinal) + 2*max(cTok, cTrig)
	stage1Max := firstWrite
	for i, st := range spec.stages {
		amp := firstWrite
		if i > 0 {
			amp = 2 * (cTok + stage1Max)
		}
		var fireReads []float64
		o0 := observed[i][stageNeurons[i][0]]
		for k, f := range o0.fire {
			if f {
				fireReads = append(fireReads, o0.read[k])
			}
		}
		if len(fireReads) == 0 {
			return nil, fmt.Errorf("scenario %s: stage %d: no held-out position where it must fire", spec.name, i+1)
		}
		alpha := neuronDrive / median(slices.Clone(fireReads))
		reads, writes := "context", tokenDirection(outs[i])
		if i > 0 {
			reads = tokenDirection(outs[i-1])
		}
		for _, n := range stageNeurons[i] {
			o := observed[i][n]
			minFire, maxQuiet := math.Inf(1), math.Inf(-1)
			for k := range o.read {
				p := o.rnd[k] + alpha*o.read[k]
				if o.fire[k] {
					minFire = min(minFire, p)
				} else {
					maxQuiet = max(maxQuiet, p)
				}
			}
			theta, margin := (minFire+maxQuiet)/2, (minFire-maxQuiet)/2
			site := siteOf(KindNeuron, nl, n)
			truth.Calibration.Margins[site] = margin
			if !(margin > 0) {
				return nil, reject("neuron %s: held-out margin %.3g (fires from %.3g, quiet up to %.3g)", site, margin, minFire, maxQuiet)
			}
			var posts []float64
			for k := range o.read {
				if o.fire[k] {
					posts = append(posts, geluTanh(o.rnd[k]+alpha*o.read[k]-theta))
				}
			}
			// Normalised by the weakest firing, so that the stage writes
			// at least amp wherever it must fire.
			w := amp / (float64(st.neurons) * slices.Min(posts))
			if i == 0 {
				stage1Max = max(stage1Max, amp*slices.Max(posts)/slices.Min(posts))
			}
			addColumn(cFc, n, alpha, readDir(i))
			cFcB.data[n] = float32(-theta)
			setRow(cProj, n, w, dirs.get(writes))
			truth.Components = append(truth.Components, Component{
				Site: site, Kind: KindNeuron, Layer: nl, Index: n, Stage: i + 2, Cause: true,
				Role:  neuronRole(i, outs),
				Reads: reads, Writes: writes,
				Planted: fmt.Sprintf("c_fc column %d: random + %.3g·%s; bias −%.3g (the held-out midpoint); c_proj row %d replaced by %.3g·%s "+
					"(stage %d writes at least %.3g in all where it must fire)", n, alpha, reads, theta, n, w, writes, i+1, amp),
				Threshold: theta, Margin: margin,
			})
		}
	}
	truth.Calibration.ResidNorms = map[string]float64{pre(hl): rHead, mid: rNeuron, final: rFinal}
	truth.Calibration.Margins["trigger-mover score gap, trigger tokens over the rest"] = attnScore

	// 5. Check the finished model on the held-out prompts.
	m, err = ps.model(name, cfgJSON, tok, b)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	det, err := chainDetector(spec)
	if err != nil {
		return nil, err
	}
	rates, err := evaluate(ctx, m, spec.detector, det, sets.calib, nil)
	if err != nil {
		return nil, err
	}
	truth.Calibration.FailingPrompts, truth.Calibration.BenignPrompts = rates.Failing, rates.Benign
	truth.Calibration.FailingFailed, truth.Calibration.BenignFailed = rates.FailingRate(), rates.BenignRate()
	logf("seed %d: held-out prompts: %d/%d failing fail, %d/%d benign fail", seed, rates.FailingFailed, rates.Failing, rates.BenignFailed, rates.Benign)
	if rates.FailingFailed < rates.Failing || rates.BenignFailed > 0 {
		return nil, reject("held-out check: %d/%d failing prompts fail, %d/%d benign prompts fail (want all and none)",
			rates.FailingFailed, rates.Failing, rates.BenignFailed, rates.Benign)
	}

	truth.Mechanism = spec.mechanism
	truth.Directions = map[string][]float64{}
	for i, n := range dirs.names {
		truth.Directions[n] = dirs.vecs[i]
	}
	truth.Init = initText(s, "GPT2PreTrainedModel")
	vocabJSON, merges := tokenizer.DefaultGPT2Files()
	files := map[string][]byte{"config.json": cfgJSON, "vocab.json": vocabJSON, "merges.txt": merges}
	if spec.lexicon != nil {
		files[spec.detector.Lexicon] = []byte("# toxic-generation lexicon: a generated token equal to one of these words (trimmed, lower-cased) is a failure\n" +
			strings.Join(spec.lexicon, "\n") + "\n")
	}
	return &made{params: ps, truth: truth, files: files, prompts: sets}, nil
}

// plantGPT2Head replaces head h of block l with the trigger mover: a
// constant query, a key and a value that read direction read, and an output
// that writes out·write.
func plantGPT2Head(ps *paramSet, s shape, l, h int, read []float64, keyGain, valueGain, out float64, write []float64) {
	d, dh := s.Hidden, s.headDim()
	p := fmt.Sprintf("transformer.h.%d.attn.", l)
	w, bias, proj := ps.get(p+"c_attn.weight"), ps.get(p+"c_attn.bias"), ps.get(p+"c_proj.weight")
	base := h * dh
	for part := range 3 {
		for j := range dh {
			col := part*d + base + j
			for i := range d {
				w.data[i*3*d+col] = 0
			}
			bias.data[col] = 0
		}
	}
	bias.data[base] = float32(math.Sqrt(float64(dh)))
	for i := range d {
		w.data[i*3*d+d+base] = float32(keyGain * read[i])
		w.data[i*3*d+2*d+base] = float32(valueGain * read[i])
	}
	for j := range dh {
		setRow(proj, base+j, 0, write)
	}
	setRow(proj, base, out, write)
}

// neuronRole describes stage i's neurons (stage i+2 of the mechanism: the
// head is stage 1).
func neuronRole(i int, outs []string) string {
	if i == 0 {
		return fmt.Sprintf("stage 2: reads the context direction (present from the trigger on); writes the unembedding direction of %q, the first token of the failure", outs[0])
	}
	return fmt.Sprintf("stage %d: reads the embedding direction of %q (the input token once stage %d made it); writes the unembedding direction of %q, out-writing the earlier stages",
		i+2, outs[i-1], i+1, outs[i])
}

// chainDetector returns the detector of a chain scenario.
func chainDetector(spec *chainSpec) (Detector, error) {
	if spec.lexicon != nil {
		return NewLexicon(spec.lexicon), nil
	}
	return NewDetector(spec.detector, "")
}

// tokenDirection names the direction planted in a token's embedding.
func tokenDirection(token string) string { return fmt.Sprintf("token %q", token) }

// singleTokens returns the GPT-2 ids of texts that must each be one token.
func singleTokens(tok *tokenizer.GPT2, texts []string) ([]int, error) {
	ids := make([]int, len(texts))
	for i, t := range texts {
		enc := tok.Encode(t)
		if len(enc) != 1 {
			return nil, fmt.Errorf("scenario: %q is %d GPT-2 tokens, not one", t, len(enc))
		}
		ids[i] = enc[0]
	}
	return ids, nil
}

// captureEach runs every calibration sequence through m, caching the hooks,
// and calls fn with each.
func captureEach(ctx context.Context, m *transformer.Model, seqs []calSeq, hooks []string, fn func(calSeq, transformer.Cache)) error {
	for _, cs := range seqs {
		_, cache, err := m.RunWithCache(ctx, cs.cal, transformer.Names(hooks...))
		if err != nil {
			return fmt.Errorf("scenario: calibration: %w", err)
		}
		fn(cs, cache)
	}
	return nil
}

// initText describes the random initialisation.
func initText(s shape, class string) string {
	return fmt.Sprintf("random, as transformers' %s._init_weights at initializer_range %.4g (0.02·sqrt(768/%d)): N(0, %.4g) matrices and embeddings%s, "+
		"zero biases, LayerNorm weight 1 and bias 0; then every random write to the residual stream (embedding rows, output projections and their biases) "+
		"projected off the planted directions, so that the planted readouts sit at 0 on benign inputs", class, s.initStd(), s.Hidden, s.initStd(),
		map[bool]string{true: fmt.Sprintf(", residual output projections N(0, %.4g)", s.initStd()/math.Sqrt(2*float64(s.Layers))), false: ""}[class == "GPT2PreTrainedModel"])
}
