package weights

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadConfigHF(t *testing.T) {
	tests := []struct {
		file string
		want Config
	}{
		{"gpt2_config.json", Config{
			ModelType: "gpt2", Architectures: []string{"GPT2LMHeadModel"},
			VocabSize: 50257, MaxPositions: 1024, Hidden: 768, Layers: 12, Heads: 12, Inner: 3072,
			LayerNormEps: 1e-5, Activation: "gelu_new",
			PadTokenID: -1, BOSTokenID: 50256, EOSTokenID: 50256,
			NumLabels: 2, ID2Label: []string{"LABEL_0", "LABEL_1"},
			TieWordEmbeddings: true, ScaleAttnWeights: true,
		}},
		{"bert-base-uncased_config.json", Config{
			ModelType: "bert", Architectures: []string{"BertForMaskedLM"},
			VocabSize: 30522, MaxPositions: 512, Hidden: 768, Layers: 12, Heads: 12, Inner: 3072,
			LayerNormEps: 1e-12, Activation: "gelu", TypeVocabSize: 2,
			PadTokenID: 0, BOSTokenID: -1, EOSTokenID: -1,
			NumLabels: 2, ID2Label: []string{"LABEL_0", "LABEL_1"},
			TieWordEmbeddings: true,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			c, err := ReadConfig(path)
			require.NoError(t, err)
			require.NoError(t, c.Validate())
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, raw, c.Raw)
			got := *c
			got.Raw, got.name = nil, ""
			assert.Equal(t, tt.want, got)
			assert.Equal(t, 64, c.HeadDim())
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		check func(t *testing.T, c *Config)
	}{
		{"gpt2 minimal", `{"model_type":"gpt2"}`, func(t *testing.T, c *Config) {
			assert.Equal(t, 50257, c.VocabSize)
			assert.Equal(t, 1024, c.MaxPositions)
			assert.Equal(t, 768, c.Hidden)
			assert.Equal(t, 3072, c.Inner)
			assert.Equal(t, 1e-5, c.LayerNormEps)
			assert.Equal(t, "gelu_new", c.Activation)
			assert.Equal(t, 0, c.TypeVocabSize)
			assert.Equal(t, []int{-1, -1, -1}, []int{c.PadTokenID, c.BOSTokenID, c.EOSTokenID})
			assert.True(t, c.TieWordEmbeddings)
			assert.True(t, c.ScaleAttnWeights)
			assert.False(t, c.ScaleAttnByInverseLayerIdx)
			assert.False(t, c.ReorderAndUpcastAttn)
		}},
		{"gpt2 n_inner null is 4*n_embd", `{"model_type":"gpt2","n_embd":64,"n_inner":null}`, func(t *testing.T, c *Config) {
			assert.Equal(t, 256, c.Inner)
		}},
		{"gpt2 n_inner set", `{"model_type":"gpt2","n_embd":64,"n_inner":100}`, func(t *testing.T, c *Config) {
			assert.Equal(t, 100, c.Inner)
		}},
		{"gpt2 flags", `{"model_type":"gpt2","scale_attn_by_inverse_layer_idx":true,"reorder_and_upcast_attn":true,"scale_attn_weights":false,"tie_word_embeddings":false}`, func(t *testing.T, c *Config) {
			assert.True(t, c.ScaleAttnByInverseLayerIdx)
			assert.True(t, c.ReorderAndUpcastAttn)
			assert.False(t, c.ScaleAttnWeights)
			assert.False(t, c.TieWordEmbeddings)
		}},
		{"bert minimal", `{"model_type":"bert"}`, func(t *testing.T, c *Config) {
			assert.Equal(t, 30522, c.VocabSize)
			assert.Equal(t, 512, c.MaxPositions)
			assert.Equal(t, 3072, c.Inner)
			assert.Equal(t, 1e-12, c.LayerNormEps)
			assert.Equal(t, "gelu", c.Activation)
			assert.Equal(t, 2, c.TypeVocabSize)
			assert.Equal(t, -1, c.PadTokenID)
		}},
		{"null token ids", `{"model_type":"gpt2","bos_token_id":null,"eos_token_id":null,"pad_token_id":null}`, func(t *testing.T, c *Config) {
			assert.Equal(t, []int{-1, -1, -1}, []int{c.PadTokenID, c.BOSTokenID, c.EOSTokenID})
		}},
		{"type from GPT2 architecture", `{"architectures":["GPT2ForSequenceClassification"]}`, func(t *testing.T, c *Config) {
			assert.Equal(t, "gpt2", c.ModelType)
		}},
		{"type from Bert architecture", `{"architectures":["Other","BertModel"]}`, func(t *testing.T, c *Config) {
			assert.Equal(t, "bert", c.ModelType)
		}},
		{"id2label", `{"model_type":"bert","id2label":{"1":"POSITIVE","0":"NEGATIVE"},"num_labels":5}`, func(t *testing.T, c *Config) {
			assert.Equal(t, []string{"NEGATIVE", "POSITIVE"}, c.ID2Label)
			assert.Equal(t, 2, c.NumLabels)
		}},
		{"num_labels", `{"model_type":"bert","num_labels":3}`, func(t *testing.T, c *Config) {
			assert.Equal(t, []string{"LABEL_0", "LABEL_1", "LABEL_2"}, c.ID2Label)
			assert.Equal(t, 3, c.NumLabels)
		}},
		{"integral float", `{"model_type":"gpt2","n_layer":6.0}`, func(t *testing.T, c *Config) {
			assert.Equal(t, 6, c.Layers)
		}},
		{"bert ignores gpt2 names", `{"model_type":"bert","n_embd":5,"hidden_size":128,"num_attention_heads":2}`, func(t *testing.T, c *Config) {
			assert.Equal(t, 128, c.Hidden)
			assert.Equal(t, 64, c.HeadDim())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig("config.json", []byte(tt.json))
			require.NoError(t, err)
			tt.check(t, c)
			assert.Equal(t, tt.json, string(c.Raw))
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want string
	}{
		{"invalid json", `{"model_type":`, "config.json: not valid JSON"},
		{"not object", `[1]`, "config.json: a JSON array, not an object"},
		{"no model type", `{"n_layer":2}`, `cannot tell the model type: no "model_type" and no GPT2* or Bert* architecture`},
		{"unsupported model type", `{"model_type":"llama"}`, `field "model_type": unsupported model type "llama"`},
		{"model type not string", `{"model_type":2}`, `field "model_type": expected a string`},
		{"n_layer string", `{"model_type":"gpt2","n_layer":"12"}`, `config.json: field "n_layer": expected a number`},
		{"hidden_size bool", `{"model_type":"bert","hidden_size":true}`, `field "hidden_size": expected a number`},
		{"n_head fraction", `{"model_type":"gpt2","n_head":1.5}`, `field "n_head": expected an integer, got 1.5`},
		{"eps string", `{"model_type":"gpt2","layer_norm_epsilon":"1e-5"}`, `field "layer_norm_epsilon": expected a number`},
		{"activation number", `{"model_type":"bert","hidden_act":1}`, `field "hidden_act": expected a string`},
		{"architectures string", `{"model_type":"gpt2","architectures":"GPT2LMHeadModel"}`, `field "architectures": expected an array of strings`},
		{"architectures element", `{"model_type":"gpt2","architectures":[1]}`, `field "architectures": expected an array of strings, element 0 is a JSON number`},
		{"tie not bool", `{"model_type":"gpt2","tie_word_embeddings":1}`, `field "tie_word_embeddings": expected a boolean`},
		{"id2label array", `{"model_type":"bert","id2label":["a"]}`, `field "id2label": expected an object`},
		{"id2label bad key", `{"model_type":"bert","id2label":{"0":"a","x":"b"}}`, `field "id2label": key "x" is not a label index from 0 to 1`},
		{"id2label gap", `{"model_type":"bert","id2label":{"0":"a","2":"b"}}`, `key "2" is not a label index`},
		{"id2label duplicate", `{"model_type":"bert","id2label":{"0":"a","0":"b"}}`, `duplicate label index "0"`},
		{"id2label value", `{"model_type":"bert","id2label":{"0":1}}`, `label "0" is a JSON number, not a string`},
		{"num_labels negative", `{"model_type":"bert","num_labels":-1}`, `field "num_labels": -1 is out of range`},
		{"pad id string", `{"model_type":"bert","pad_token_id":"0"}`, `field "pad_token_id": expected a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig("config.json", []byte(tt.json))
			require.Error(t, err)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		want  string
		field string
	}{
		{"gpt2 heads", `{"model_type":"gpt2","n_embd":770,"n_head":12}`, "n_embd (770) is not divisible by n_head (12)", ""},
		{"bert heads", `{"model_type":"bert","hidden_size":100,"num_attention_heads":3}`, "hidden_size (100) is not divisible by num_attention_heads (3)", ""},
		{"zero layers", `{"model_type":"gpt2","n_layer":0}`, `field "n_layer": must be positive, got 0`, "n_layer"},
		{"negative vocab", `{"model_type":"bert","vocab_size":-5}`, `field "vocab_size": must be positive, got -5`, "vocab_size"},
		{"zero heads", `{"model_type":"gpt2","n_head":0}`, `field "n_head": must be positive`, "n_head"},
		{"zero positions", `{"model_type":"bert","max_position_embeddings":0}`, `field "max_position_embeddings": must be positive`, "max_position_embeddings"},
		{"zero inner", `{"model_type":"bert","intermediate_size":0}`, `field "intermediate_size": must be positive`, "intermediate_size"},
		{"zero type vocab", `{"model_type":"bert","type_vocab_size":0}`, `field "type_vocab_size": must be positive`, "type_vocab_size"},
		{"huge", `{"model_type":"gpt2","vocab_size":4611686018427387904}`, `field "vocab_size": 4611686018427387904 exceeds the limit`, "vocab_size"},
		{"activation", `{"model_type":"gpt2","activation_function":"relu"}`, `field "activation_function": unsupported activation "relu"`, "activation_function"},
		{"bert activation", `{"model_type":"bert","hidden_act":"silu"}`, `field "hidden_act": unsupported activation "silu"`, "hidden_act"},
		{"eps zero", `{"model_type":"gpt2","layer_norm_epsilon":0}`, `field "layer_norm_epsilon": must be positive and finite`, "layer_norm_epsilon"},
		{"eps nan", `{"model_type":"bert","layer_norm_eps":NaN}`, `field "layer_norm_eps": must be positive and finite`, "layer_norm_eps"},
		{"pad id out of vocab", `{"model_type":"bert","vocab_size":10,"pad_token_id":10}`, `field "pad_token_id": 10 is outside the vocabulary of 10 tokens`, "pad_token_id"},
		{"eos id negative", `{"model_type":"gpt2","eos_token_id":-2}`, `field "eos_token_id": -2 is outside`, "eos_token_id"},
		{"no labels", `{"model_type":"bert","id2label":{}}`, `field "id2label": 0 labels`, "id2label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig("config.json", []byte(tt.json))
			require.NoError(t, err)
			err = c.Validate()
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			assert.Contains(t, err.Error(), "config.json: "+tt.want)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
		})
	}

	t.Run("hand-built config", func(t *testing.T) {
		c := &Config{ModelType: "gpt2", VocabSize: 10, MaxPositions: 8, Hidden: 4, Layers: 1, Heads: 2, Inner: 16,
			LayerNormEps: 1e-5, Activation: "gelu_pytorch_tanh", PadTokenID: -1, BOSTokenID: -1, EOSTokenID: 9,
			NumLabels: 1, ID2Label: []string{"x"}}
		assert.NoError(t, c.Validate())
		c.ModelType = "t5"
		assert.ErrorContains(t, c.Validate(), `config.json: field "model_type": unsupported model type "t5"`)
	})
}

func TestReadConfigErrors(t *testing.T) {
	_, err := ReadConfig(filepath.Join(t.TempDir(), "config.json"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config.json")

	p := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(p, []byte(`{"model_type":"gpt2","n_layer":"x"}`), 0o644))
	_, err = ReadConfig(p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p+`: field "n_layer": expected a number`)
}
