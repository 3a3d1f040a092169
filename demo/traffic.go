package demo

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
)

// subject is a demo user and the level the seeded consent gives it.
type subject struct {
	tenant, user string
}

// The demo's world: three tenants at the three levels, one without any
// record (the opt-in default), users that tighten their tenant's level, a
// malformed record, and dave, who opts out halfway through.
var (
	subjects = []subject{
		{"acme", "alice"}, {"acme", "dave"}, {"acme", "erin"}, {"acme", "mallory"},
		{"globex", "bob"}, {"globex", "frank"},
		{"initech", "carol"},
		{"umbrella", "grace"},
	}
	optOut = subject{"acme", "dave"}
)

// seedConsent returns the consent records written before the stage starts.
func seedConsent() [][2]string {
	return [][2]string{
		{"t:acme", `{"default":"allow","updated_by":"admin:acme"}`},
		{"t:globex", `{"default":"anonymized","categories":{"files":"deny"},"updated_by":"admin:globex"}`},
		{"t:initech", `{"default":"deny","updated_by":"admin:initech"}`},
		{"u:acme:erin", `{"default":"anonymized","updated_by":"user:erin"}`},
		{"u:globex:bob", `{"default":"allow","updated_by":"user:bob"}`}, // cannot loosen globex's anonymized
		{"u:acme:mallory", `{"default":"yes please"`},                   // malformed: deny, audited
	}
}

var texts = []string{
	"Can you send the Q3 numbers to %s before Friday?",
	"My phone is %s, call me after 5pm. cc <@U%d>",
	"Card on file is %s, charge it for the renewal",
	"Wire it to %s please, reference INV-2291",
	"The staging box is at %s, key is AKIAIOSFODNN7EXAMPLE",
	"Here is the token ghp_%s for the CI job",
	"Let's sync tomorrow at 10:30 about release 2.4.1",
}

var pii = []func(r *rand.Rand) string{
	func(r *rand.Rand) string { return fmt.Sprintf("user%d@example.com", r.IntN(1000)) },
	func(r *rand.Rand) string { return fmt.Sprintf("+1 415 555 01%02d", r.IntN(100)) },
	func(*rand.Rand) string { return "4111 1111 1111 1111" },
	func(*rand.Rand) string { return "DE89 3704 0044 0532 0130 00" },
	func(r *rand.Rand) string { return fmt.Sprintf("10.%d.%d.7", r.IntN(255), r.IntN(255)) },
	func(*rand.Rand) string { return "abcdefghijklmnopqrstuvwxyz0123456789" },
	func(*rand.Rand) string { return "" },
}

// event returns the n-th synthetic event: its stream name, key and value.
// One in fifty is malformed (invalid JSON or no user id) to show quarantine.
func event(r *rand.Rand, n int, s subject) (stream string, key, value []byte) {
	id := fmt.Sprintf("demo-%06d", n)
	key = []byte(s.tenant + "/" + s.user)
	i := r.IntN(len(texts))
	text := texts[i]
	switch i {
	case 1:
		text = fmt.Sprintf(text, pii[i](r), r.IntN(9)+1)
	case 6:
	default:
		text = fmt.Sprintf(text, pii[i](r))
	}
	switch {
	case n%50 == 17:
		return "chat", key, []byte(`{"event_id":"` + id + `","tenant_id":"` + s.tenant + `","user_id":`)
	case n%50 == 33:
		return "messages", key, mustJSON(map[string]any{"event_id": id, "type": "message", "tenant_id": s.tenant, "body": text})
	}
	switch n % 3 {
	case 0:
		ev := map[string]any{"event_id": id, "type": "chat.message", "tenant_id": s.tenant, "user_id": s.user,
			"channel_id": "C42", "ts": "2026-11-22T10:00:00Z", "text": text}
		return "chat", key, mustJSON(ev)
	case 1:
		content := base64.StdEncoding.EncodeToString([]byte("meeting notes\n" + text + "\n"))
		ev := map[string]any{"event_id": id, "type": "file.shared", "tenant_id": s.tenant, "user_id": s.user,
			"ts": "2026-11-22T10:00:00Z", "file": map[string]any{"id": fmt.Sprintf("F%d", n), "name": "notes for " + s.user + "@example.com.txt",
				"mimetype": "text/plain", "size": len(text) + 15, "content_b64": content}}
		return "files", key, mustJSON(ev)
	default:
		ev := map[string]any{"event_id": id, "type": "message", "tenant_id": s.tenant, "user_id": s.user,
			"ts": "2026-11-22T10:00:00Z", "from": s.user + "@" + s.tenant + ".example", "to": []string{"team@" + s.tenant + ".example"},
			"subject": "re: renewal", "body": text}
		return "messages", key, mustJSON(ev)
	}
}

// mustJSON encodes v without Go's HTML escaping, so mentions read <@U2>.
func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
