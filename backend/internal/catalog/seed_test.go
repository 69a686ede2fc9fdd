package catalog_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"flashedge/backend/internal/catalog"
	"flashedge/shared/keyspace"
	"flashedge/shared/kv/kvtest"
	"flashedge/shared/product"
)

func TestDemoProductsArePlausible(t *testing.T) {
	const n = catalog.DefaultDemoProducts
	ps := catalog.DemoProducts(n)
	if len(ps) != n {
		t.Fatalf("DemoProducts(%d) made %d products", n, len(ps))
	}
	names := map[string]bool{}
	images := map[string]bool{}
	var out, low int
	for i, p := range ps {
		// Every product must pass the same validation an admin create does.
		name, desc, price, img, stock := p.Name, p.Description, p.Price, p.Image, p.Stock
		var d product.Doc
		if _, err := (product.Input{Name: &name, Description: &desc, Price: &price, Image: &img, Stock: &stock}).Apply(&d, true); err != nil {
			t.Fatalf("product %d %+v is invalid: %v", i, p, err)
		}
		switch {
		case p.ID != "":
			t.Errorf("product %d has id %q, want none (the store assigns them)", i, p.ID)
		case p.Price%1000 != 0 || p.Price < 1000 || p.Price > 50_000_000:
			t.Errorf("product %d %q costs %d VND, want whole thousands between 1,000 and 50,000,000", i, p.Name, p.Price)
		case p.Currency != "VND":
			t.Errorf("product %d currency %q, want VND", i, p.Currency)
		case !strings.HasPrefix(p.Image, "/img/") || !strings.HasSuffix(p.Image, ".svg"):
			t.Errorf("product %d image %q, want /img/<category>.svg", i, p.Image)
		case len(p.Description) < 20:
			t.Errorf("product %d description %q is too short", i, p.Description)
		case names[p.Name]:
			t.Errorf("product %d repeats the name %q", i, p.Name)
		}
		names[p.Name] = true
		images[p.Image] = true
		switch product.StockState(p.Stock) {
		case "out_of_stock":
			out++
		case "low":
			low++
		}
	}
	if len(images) < 10 {
		t.Errorf("only %d categories (images), want a varied shop", len(images))
	}
	if out == 0 || low == 0 || out+low > n/3 {
		t.Errorf("%d out of stock and %d low of %d, want some of each and mostly plenty", out, low, n)
	}
	if again := catalog.DemoProducts(n); !reflect.DeepEqual(ps, again) {
		t.Error("DemoProducts is not deterministic")
	}
	if first := catalog.DemoProducts(50); !reflect.DeepEqual(first, ps[:50]) {
		t.Error("DemoProducts(50) is not the first 50 of DemoProducts(1200)")
	}
	// Asking for more products than there are distinct names still ends, with unique names.
	many := catalog.DemoProducts(20_000)
	seen := map[string]bool{}
	for _, p := range many {
		if seen[p.Name] {
			t.Fatalf("DemoProducts(20000) repeats %q", p.Name)
		}
		seen[p.Name] = true
	}
}

func TestSeedDemoIsIdempotent(t *testing.T) {
	srv := kvtest.Start(t)
	c := srv.Client(t)
	s := catalog.NewStore(c)
	ctx := context.Background()

	start := time.Now()
	n, err := s.SeedDemo(ctx, catalog.DefaultDemoProducts)
	took := time.Since(start)
	if err != nil || n != catalog.DefaultDemoProducts {
		t.Fatalf("first SeedDemo = %d, %v; want %d products", n, err, catalog.DefaultDemoProducts)
	}
	t.Logf("seeded %d products in %v", n, took)
	for range 2 {
		if n, err := s.SeedDemo(ctx, catalog.DefaultDemoProducts); err != nil || n != 0 {
			t.Fatalf("repeated SeedDemo = %d, %v; want 0 (the catalog is not empty)", n, err)
		}
	}
	if got, _ := s.Count(ctx); got != catalog.DefaultDemoProducts {
		t.Errorf("index holds %d ids, want %d", got, catalog.DefaultDemoProducts)
	}
	if ex, _ := c.Do(ctx, c.B().Exists().Key(keyspace.CatalogSeedLock()).Build()).AsInt64(); ex != 0 {
		t.Error("the seed lock is still held after seeding")
	}

	// Walk the seeded catalog through the store as the service reads it.
	want := catalog.DemoProducts(catalog.DefaultDemoProducts)
	var got []catalog.Product
	after := ""
	for {
		page, err := s.List(ctx, after, catalog.MaxLimit)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Items...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d seeded products, want %d", len(got), len(want))
	}
	for i := range got {
		w := want[i]
		w.ID = catalog.FormatID(int64(i + 1))
		if got[i] != w {
			t.Fatalf("seeded product %d = %+v, want %+v", i, got[i], w)
		}
	}
	// New products continue the id sequence after the seeded ones.
	name, price, stock := "Sau seed", int64(1000), int64(1)
	p, err := s.Create(ctx, product.Input{Name: &name, Price: &price, Stock: &stock})
	if err != nil || p.ID != catalog.FormatID(catalog.DefaultDemoProducts+1) {
		t.Errorf("create after seeding = %+v, %v; want id %s", p, err, catalog.FormatID(catalog.DefaultDemoProducts+1))
	}
}

func TestSeedDemoSkips(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		asked int
		setup func(t *testing.T, c rueidis.Client, s *catalog.Store)
	}{
		{"catalog not empty", 100, func(t *testing.T, _ rueidis.Client, s *catalog.Store) {
			name, price, stock := "Có sẵn", int64(1000), int64(1)
			if _, err := s.Create(ctx, product.Input{Name: &name, Price: &price, Stock: &stock}); err != nil {
				t.Fatal(err)
			}
		}},
		{"another process seeding", 100, func(t *testing.T, c rueidis.Client, _ *catalog.Store) {
			if err := c.Do(ctx, c.B().Set().Key(keyspace.CatalogSeedLock()).Value("other").Build()).Error(); err != nil {
				t.Fatal(err)
			}
		}},
		{"zero products asked", 0, func(*testing.T, rueidis.Client, *catalog.Store) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := kvtest.Start(t)
			c := srv.Client(t)
			s := catalog.NewStore(c)
			tt.setup(t, c, s)
			before, _ := s.Count(ctx)
			n, err := s.SeedDemo(ctx, tt.asked)
			if err != nil || n != 0 {
				t.Fatalf("SeedDemo(%d) = %d, %v; want 0, nil", tt.asked, n, err)
			}
			if after, _ := s.Count(ctx); after != before {
				t.Errorf("index went from %d to %d ids, want unchanged", before, after)
			}
		})
	}
}
