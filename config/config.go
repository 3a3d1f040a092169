package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/proxy"
	"github.com/anonproxy/anonproxy/redact"
)

// File is the whole configuration file.
type File struct {
	Kafka     proxy.KafkaConfig    `yaml:"kafka"`
	Consent   consent.Config       `yaml:"consent"`
	Policy    consent.PolicyConfig `yaml:"policy"`
	Stage     proxy.Config         `yaml:"stage"`
	HTTP      HTTPConfig           `yaml:"http"`
	Log       LogConfig            `yaml:"log"`
	Redaction redact.Options       `yaml:"redaction"`
	Streams   []proxy.StreamConfig `yaml:"streams"`
}

// HTTPConfig is the health and metrics endpoint.
type HTTPConfig struct {
	// Listen address for /healthz, /readyz and /metrics. Default: 127.0.0.1:9464.
	Listen string `yaml:"listen"`
}

// LogConfig shapes the structured logs (log/slog). Payload bytes are never logged.
type LogConfig struct {
	// Level: debug, info, warn or error. Default: info.
	Level string `yaml:"level"`
	// Format: json or text. Default: json.
	Format string `yaml:"format"`
}

// Problem is one thing wrong with a file, at a YAML path.
type Problem struct {
	Path string
	Line int // 0 when unknown
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", p.Path, p.Line, p.Msg)
	}
	return p.Path + ": " + p.Msg
}

// Problems is the error Load returns for a file that is not valid: every
// problem found, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return "invalid config:\n  " + strings.Join(lines, "\n  ")
}

// Load reads and validates the file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Parse decodes and validates a configuration document.
func Parse(data []byte) (*File, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{{Path: "(file)", Line: lineOf(err.Error()), Msg: cleanYAMLError(err.Error())}}
	}
	if len(root.Content) == 0 {
		return nil, Problems{{Path: "(file)", Msg: "empty configuration"}}
	}
	lines := map[int]string{}
	var ps Problems
	walk(root.Content[0], reflect.TypeOf(File{}), "", lines, &ps)

	if len(ps) > 0 {
		return nil, ps
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				if strings.Contains(e, "not found in type") {
					continue // reported with its path by walk
				}
				l := lineOf(e)
				ps = append(ps, Problem{Path: pathAt(lines, l), Line: l, Msg: cleanYAMLError(e)})
			}
		} else {
			ps = append(ps, Problem{Path: "(file)", Line: lineOf(err.Error()), Msg: cleanYAMLError(err.Error())})
		}
	}
	if len(ps) == 0 {
		ps = append(ps, f.validate(lines)...)
	}
	if len(ps) > 0 {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Line < ps[j].Line && ps[i].Line > 0 })
		return nil, ps
	}
	return &f, nil
}

// Stream returns the stream named name.
func (f *File) Stream(name string) (*proxy.StreamConfig, error) {
	var names []string
	for i := range f.Streams {
		if f.Streams[i].Name == name {
			return &f.Streams[i], nil
		}
		names = append(names, f.Streams[i].Name)
	}
	return nil, fmt.Errorf("no stream %q in the config (streams: %s)", name, strings.Join(names, ", "))
}

func (f *File) validate(lines map[int]string) Problems {
	var ps Problems
	add := func(prefix, path string, err error) {
		full := prefix + path
		ps = append(ps, Problem{Path: full, Line: lineFor(lines, full), Msg: err.Error()})
	}
	for _, e := range f.Kafka.Validate() {
		add("kafka.", e.Path, e.Err)
	}
	for _, e := range f.Consent.Validate() {
		add("consent.", e.Path, errors.New(e.Msg))
	}
	for _, e := range f.Policy.Validate() {
		add("policy.", e.Path, errors.New(e.Msg))
	}
	for _, e := range f.Stage.Validate() {
		add("stage.", e.Path, e.Err)
	}
	for _, e := range f.Redaction.Validate() {
		add("redaction.", e.Path, e.Err)
	}
	for _, e := range proxy.ValidateStreams(f.Streams, &f.Stage) {
		add("", e.Path, e.Err)
	}
	switch f.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		add("log.", "level", fmt.Errorf("%q: want debug, info, warn or error", f.Log.Level))
	}
	switch f.Log.Format {
	case "", "json", "text":
	default:
		add("log.", "format", fmt.Errorf("%q: want json or text", f.Log.Format))
	}
	return ps
}

var (
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	yamlUnmarshaler = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// walk checks n against type t, reporting unknown keys with their paths,
// and records which path each line holds so decode errors can be placed.
func walk(n *yaml.Node, t reflect.Type, path string, lines map[int]string, ps *Problems) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, ok := lines[n.Line]; !ok && path != "" {
		lines[n.Line] = path
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		// Decode scalars here so their errors carry a path and a line.
		if n.Kind == yaml.ScalarNode {
			v := reflect.New(t).Interface().(encoding.TextUnmarshaler)
			if err := v.UnmarshalText([]byte(n.Value)); err != nil {
				*ps = append(*ps, Problem{Path: path, Line: n.Line, Msg: err.Error()})
			}
		}
		return
	}
	if reflect.PointerTo(t).Implements(yamlUnmarshaler) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			lines[k.Line] = p
			ft, ok := fields[k.Value]
			if !ok {
				*ps = append(*ps, Problem{Path: p, Line: k.Line, Msg: "unknown key" + suggest(k.Value, fields)})
				continue
			}
			walk(v, ft, p, lines, ps)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			lines[n.Content[i].Line] = p
			walk(n.Content[i+1], t.Elem(), p, lines, ps)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), lines, ps)
		}
	}
}

func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func suggest(key string, fields map[string]reflect.Type) string {
	var names []string
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.EqualFold(strings.ReplaceAll(n, "_", ""), strings.ReplaceAll(key, "_", "")) || editDistance1(n, key) {
			return fmt.Sprintf(" (did you mean %q?)", n)
		}
	}
	return " (known keys: " + strings.Join(names, ", ") + ")"
}

// editDistance1 reports whether a and b differ by one edit or one swap.
func editDistance1(a, b string) bool {
	if a == b || len(a)-len(b) > 1 || len(b)-len(a) > 1 {
		return false
	}
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	switch {
	case len(a) == len(b):
		return a[i+1:] == b[i+1:] || (i+1 < len(a) && a[i] == b[i+1] && a[i+1] == b[i] && a[i+2:] == b[i+2:])
	case len(a) > len(b):
		return a[i+1:] == b[i:]
	default:
		return a[i:] == b[i+1:]
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var lineRe = regexp.MustCompile(`line (\d+)`)

func lineOf(msg string) int {
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func pathAt(lines map[int]string, line int) string {
	if p, ok := lines[line]; ok {
		return p
	}
	return "(file)"
}

// lineFor finds the line of a path, or of its nearest recorded parent.
func lineFor(lines map[int]string, path string) int {
	for p := path; p != ""; {
		for l, lp := range lines {
			if lp == p {
				return l
			}
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

var prefixRe = regexp.MustCompile(`^(yaml: )?(unmarshal errors:\s*)?(line \d+: )?`)

func cleanYAMLError(s string) string { return prefixRe.ReplaceAllString(s, "") }

// PrefixTopics puts prefix+"." before every topic name and the group id,
// so that a load test or an integration test runs on topics of its own
// without touching a deployment's.
func (f *File) PrefixTopics(prefix string) {
	p := func(s *string) { *s = prefix + "." + *s }
	p(&f.Consent.Topic)
	f.Stage = f.Stage.Defaults()
	p(&f.Stage.GroupID)
	p(&f.Stage.QuarantineTopic)
	p(&f.Stage.AuditTopic)
	for i := range f.Streams {
		p(&f.Streams[i].Input)
		p(&f.Streams[i].Output)
	}
}

// Categories lists the consent categories the streams use (fixed ones and
// the values of category mappings), which consent.NewTable indexes for
// faster lookups. Every tool that builds a table passes this list, so they
// all build it as the stage does.
func (f *File) Categories() []string {
	var out []string
	for _, s := range f.Streams {
		if s.Category != "" {
			out = append(out, s.Category)
		}
		for _, c := range s.Categories {
			out = append(out, c)
		}
	}
	return out
}
