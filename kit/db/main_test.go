package db_test

import (
	"testing"

	"github.com/pyleeai/pylee/kit/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }
