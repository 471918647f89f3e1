//go:build cfexp

package cf

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/modelforensics/fx/engine/cpu"
	"github.com/modelforensics/fx/transformer"
)

func TestExp(t *testing.T) {
	dirs := strings.Split(os.Getenv("SCEN"), ",")
	cfg := DefaultConfig()
	if v := os.Getenv("VALUES"); v != "" {
		cfg.Values = strings.Split(v, ",")
	}
	if v := os.Getenv("EXCLUDE"); v != "" {
		cfg.Exclude = strings.Split(v, ",")
	}
	if v := os.Getenv("NOEXCL"); v != "" {
		cfg.Exclude = nil
	}
	if v := os.Getenv("TOP"); v != "" {
		fmt.Sscan(v, &cfg.Top)
	}
	if v := os.Getenv("ZCLIP"); v != "" {
		fmt.Sscan(v, &cfg.ZClip)
	}
	if os.Getenv("FP16") != "" {
		cfg.Quantize = FP16
	}
	if v := os.Getenv("MINROW"); v != "" {
		fmt.Sscan(v, &cfg.MinRowBytes)
	}
	if v := os.Getenv("COMBINE"); v != "" {
		cfg.Combine = v
	}
	var rs []*EvalResult
	for _, d := range dirs {
		m, err := transformer.Load(d, cpu.New())
		if err != nil {
			t.Fatal(err)
		}
		r, err := Evaluate(context.Background(), d, m, EvalOptions{Config: cfg})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
		for _, row := range r.Rows {
			fmt.Println(r.Scenario, row.Variant, row.Signals, row.Ranks, row.FailingScore, row.BenignScore)
		}
		fmt.Printf("%.1fs\n", r.Seconds)
	}
	fmt.Println(Table(rs))
}
