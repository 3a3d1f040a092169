// Package configs holds the reference configuration (example.yaml, CONTRACT
// §4), embedded so that `anonproxy demo` runs the very rules a deployment
// starts from. A test loads and validates every YAML file in this folder.
package configs

import _ "embed"

// Example is configs/example.yaml.
//
//go:embed example.yaml
var Example []byte
