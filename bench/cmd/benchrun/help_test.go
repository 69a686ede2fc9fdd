package main

import (
	"testing"

	"flashedge/shared/flagenv/flagenvtest"
)

func TestHelp(t *testing.T) { flagenvtest.CheckHelp(t, "benchrun", run) }
