//go:build scenario_small

package scenario

import "testing"

// TestScenariosSmall makes every scenario at the small size (GPT-2 small and
// BERT base shapes) and checks it as TestScenariosTiny does. It is behind
// the scenario_small build tag because it takes about 15 minutes on 2 cores
// (see bench/RESULTS.md, "Scenarios"):
//
//	go test -tags scenario_small -run TestScenariosSmall -timeout 2h -v ./forensics/scenario
func TestScenariosSmall(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) { checkScenario(t, name, Small) })
	}
}
