package consent

import (
	"fmt"
	"sort"
)

// PolicyConfig holds the configured default levels, used for an event whose
// tenant and user both have no consent record. YAML path: policy.
//
// The zero value is opt-in mode: deny for every category. Opt-out mode sets
// Default, or per-category Defaults, to allow or anonymized.
type PolicyConfig struct {
	// Default is the level of categories not listed in Defaults.
	// Default: deny.
	Default Level `yaml:"default"`
	// Defaults maps a category to its default level.
	Defaults map[string]Level `yaml:"defaults"`
}

// DefaultFor returns the configured default level of category.
func (c *PolicyConfig) DefaultFor(category string) Level {
	if l, ok := c.Defaults[category]; ok {
		return l
	}
	return c.Default
}

// Validate reports problems with paths relative to the policy section.
func (c *PolicyConfig) Validate() []FieldError {
	var errs []FieldError
	if c.Default > LevelAllow {
		errs = append(errs, FieldError{Path: "default", Msg: fmt.Sprintf("unknown level %d", c.Default)})
	}
	names := make([]string, 0, len(c.Defaults))
	for k := range c.Defaults {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "" {
			errs = append(errs, FieldError{Path: "defaults", Msg: "empty category name"})
		}
		if c.Defaults[k] > LevelAllow {
			errs = append(errs, FieldError{Path: "defaults." + k, Msg: fmt.Sprintf("unknown level %d", c.Defaults[k])})
		}
	}
	return errs
}

// Reason says why a Decision has its level.
type Reason uint8

const (
	// ReasonDefault: neither the tenant nor the user has a record; the
	// level is the configured default of the category.
	ReasonDefault Reason = iota
	// ReasonTenant: only the tenant has a record.
	ReasonTenant
	// ReasonUser: only the user has a record.
	ReasonUser
	// ReasonBoth: both have a record; the level is the more restrictive of
	// the two and Decision.By names the record that gave it (the user
	// record on a tie).
	ReasonBoth
	// ReasonMalformed: the deciding record's value did not parse or named an
	// unknown level, so it counts as deny (fail closed). Decision.By names it.
	ReasonMalformed
)

var reasonNames = [...]string{
	ReasonDefault:   "configured default",
	ReasonTenant:    "tenant record",
	ReasonUser:      "user record",
	ReasonBoth:      "tenant and user record",
	ReasonMalformed: "malformed record",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Decision is the effective consent level of one (tenant, user, category)
// and why, with the coordinates of the deciding record so audit can cite it.
type Decision struct {
	Level  Level
	Reason Reason
	// By is the kind of the deciding record; zero for ReasonDefault.
	By SubjectKind
	// Key is the canonical consent key of the deciding record (see TenantKey,
	// UserKey), empty for ReasonDefault. It shares the table's immutable key
	// memory: no copy is made and it stays valid forever.
	Key string
	// Partition and Offset locate the deciding record in the consent topic
	// (the latest record applied for Key); both -1 for ReasonDefault.
	Partition int32
	Offset    int64
}

// found is the result of one key lookup.
type found struct {
	ok        bool
	key       string
	partition int32
	offset    int64
	vec       *levelVec
}

// compose is the composition rule of CONTRACT §3, the single place that
// turns the tenant's and the user's record into a decision.
func compose(tr, ur *found, catIdx int, category string, def Level) Decision {
	switch {
	case !tr.ok && !ur.ok:
		return Decision{Level: def, Reason: ReasonDefault, Partition: -1, Offset: -1}
	case tr.ok && !ur.ok:
		return tr.decision(ReasonTenant, SubjectTenant, catIdx, category)
	case !tr.ok && ur.ok:
		return ur.decision(ReasonUser, SubjectUser, catIdx, category)
	}
	if ur.vec.malformed {
		return ur.decision(ReasonMalformed, SubjectUser, catIdx, category)
	}
	if tr.vec.malformed {
		return tr.decision(ReasonMalformed, SubjectTenant, catIdx, category)
	}
	if tr.vec.level(catIdx, category) < ur.vec.level(catIdx, category) {
		return tr.decision(ReasonBoth, SubjectTenant, catIdx, category)
	}
	return ur.decision(ReasonBoth, SubjectUser, catIdx, category)
}

func (f *found) decision(r Reason, by SubjectKind, catIdx int, category string) Decision {
	if f.vec.malformed {
		r = ReasonMalformed
	}
	return Decision{Level: f.vec.level(catIdx, category), Reason: r, By: by, Key: f.key, Partition: f.partition, Offset: f.offset}
}
