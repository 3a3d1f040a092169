package consent

import "fmt"

// Level is a consent level. Levels are ordered from most to least
// restrictive, so the more restrictive of two levels is the smaller one.
// The zero value is LevelDeny: anything not explicitly set fails closed.
type Level uint8

const (
	// LevelDeny: the event is never used for training.
	LevelDeny Level = iota
	// LevelAnonymized: used only after the stream's anonymization rules.
	LevelAnonymized
	// LevelAllow: used as is, after the always-on scrubbing.
	LevelAllow
)

var levelNames = [...]string{LevelDeny: "deny", LevelAnonymized: "anonymized", LevelAllow: "allow"}

// String returns the level's name in the consent topic ("deny", "anonymized", "allow").
func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// ParseLevel parses a level name as written in consent records and config.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "deny":
		return LevelDeny, nil
	case "anonymized":
		return LevelAnonymized, nil
	case "allow":
		return LevelAllow, nil
	}
	return LevelDeny, fmt.Errorf("unknown consent level %q (want deny, anonymized or allow)", s)
}

// Min returns the more restrictive of a and b.
func Min(a, b Level) Level {
	if a < b {
		return a
	}
	return b
}

// MarshalText implements encoding.TextMarshaler.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; YAML and JSON decoding
// reject unknown level names with the error of ParseLevel.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
