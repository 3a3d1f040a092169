package redact

// detector identifies one free-text detector. The order is the order of
// DetectorNames and of the Stats arrays.
type detector uint8

const (
	detEmail detector = iota
	detPhone
	detCard
	detIBAN
	detIP
	detSSN
	detMention
	detAWSKey
	detAWSSecret
	detGitHub
	detSlack
	detStripe
	detGoogle
	detJWT
	detPrivateKey
	detURLSecret
	numDetectors
)

var detectorNames = [numDetectors]string{
	detEmail:      "email",
	detPhone:      "phone",
	detCard:       "card",
	detIBAN:       "iban",
	detIP:         "ip",
	detSSN:        "ssn",
	detMention:    "mention",
	detAWSKey:     "aws_access_key",
	detAWSSecret:  "aws_secret_key",
	detGitHub:     "github_token",
	detSlack:      "slack_token",
	detStripe:     "stripe_key",
	detGoogle:     "google_api_key",
	detJWT:        "jwt",
	detPrivateKey: "private_key",
	detURLSecret:  "url_secret",
}

var defaultTokens = [numDetectors]string{
	detEmail:      "[EMAIL]",
	detPhone:      "[PHONE]",
	detCard:       "[CARD]",
	detIBAN:       "[IBAN]",
	detIP:         "[IP]",
	detSSN:        "[SSN]",
	detMention:    "", // mentions are pseudonymized, not tokenized
	detAWSKey:     "[SECRET]",
	detAWSSecret:  "[SECRET]",
	detGitHub:     "[SECRET]",
	detSlack:      "[SECRET]",
	detStripe:     "[SECRET]",
	detGoogle:     "[SECRET]",
	detJWT:        "[SECRET]",
	detPrivateKey: "[SECRET]",
	detURLSecret:  "[URL_SECRET]",
}

type detMask uint32

const (
	maskPII         detMask = 1<<detEmail | 1<<detPhone | 1<<detCard | 1<<detIBAN | 1<<detIP | 1<<detSSN
	maskCredentials detMask = 1<<detAWSKey | 1<<detAWSSecret | 1<<detGitHub | 1<<detSlack | 1<<detStripe |
		1<<detGoogle | 1<<detJWT | 1<<detPrivateKey | 1<<detURLSecret
	maskAll detMask = 1<<numDetectors - 1
)

func (m detMask) has(d detector) bool { return m&(1<<d) != 0 }

// Detector groups accepted in Rule.Detectors besides the detector names.
var detectorGroups = map[string]detMask{
	"all":         maskAll,
	"pii":         maskPII,
	"credentials": maskCredentials,
}

// DetectorNames returns the detector names in Stats order. Rule.Detectors
// accepts these and the groups "all", "pii" (email, phone, card, iban, ip,
// ssn) and "credentials" (every secret and token detector, including
// private keys and secrets in URLs).
func DetectorNames() []string { return append([]string(nil), detectorNames[:]...) }

// action is a compiled Rule.Action.
type action uint8

const (
	actDrop action = iota
	actNull
	actReplace
	actMask
	actPseudonymize
	actTruncate
	actScan
	actFile
	numActions
)

var actionNames = [numActions]string{
	actDrop:         "drop",
	actNull:         "null",
	actReplace:      "replace",
	actMask:         "mask",
	actPseudonymize: "pseudonymize",
	actTruncate:     "truncate",
	actScan:         "scan",
	actFile:         "file",
}

// ActionNames returns the rule action names in Stats order.
func ActionNames() []string { return append([]string(nil), actionNames[:]...) }

// Stats counts what AppendRedacted did. Detector counts are spans replaced
// in free text; action counts are values a rule changed (a scan counts only
// when something in the value was replaced; file counts files whose content
// was rewritten or removed). A Stats is owned by one goroutine; merge
// per-worker Stats with Add. The zero value is ready to use; a nil *Stats
// passed to AppendRedacted is allowed and counts nothing.
type Stats struct {
	Detectors [numDetectors]uint64
	Actions   [numActions]uint64
}

// Add adds o's counts to s.
func (s *Stats) Add(o *Stats) {
	for i := range s.Detectors {
		s.Detectors[i] += o.Detectors[i]
	}
	for i := range s.Actions {
		s.Actions[i] += o.Actions[i]
	}
}

// Reset zeroes s.
func (s *Stats) Reset() { *s = Stats{} }

// Each calls fn for every counter, kind "detector" or "action", in a fixed
// order, including zero counters (so Prometheus series exist from start).
func (s *Stats) Each(fn func(kind, name string, n uint64)) {
	for i, n := range s.Detectors {
		fn("detector", detectorNames[i], n)
	}
	for i, n := range s.Actions {
		fn("action", actionNames[i], n)
	}
}

func (s *Stats) det(d detector) {
	if s != nil {
		s.Detectors[d]++
	}
}

func (s *Stats) act(a action) {
	if s != nil {
		s.Actions[a]++
	}
}
