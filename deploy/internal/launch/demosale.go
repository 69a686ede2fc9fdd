package launch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// DemoSale is the flash sale `make run` creates on a store without sales, so a new user sees the
// flash-sale panel of the shop working: live from now for three hours, 50 units in 4 shards of
// the second demo product, one per shopper.
const DemoSale = "demo"

// SeedDemoSale creates DemoSale through the edge's admin API when the store has no sale yet.
// It reports what it did; a failure is reported, never fatal (the shop works without it).
func SeedDemoSale(ctx context.Context, edge, adminToken string, now time.Time) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := &http.Client{}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+edge+"/api/v1/flash-sales", nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil {
		return "", fmt.Errorf("list flash sales: %w", err)
	}
	if len(list.Items) > 0 {
		return fmt.Sprintf("%d flash sale(s) already in the store", len(list.Items)), nil
	}
	body, _ := json.Marshal(map[string]any{
		"id": DemoSale, "product_id": "00000002", "price": 49000, "stock": 50, "shards": 4,
		"starts_at": now.UTC().Format(time.RFC3339), "ends_at": now.Add(3 * time.Hour).UTC().Format(time.RFC3339),
		"per_user_limit": 1,
	})
	req, _ = http.NewRequestWithContext(ctx, "POST", "http://"+edge+"/api/v1/admin/flash-sales", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err = c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("create the demo sale: %s", resp.Status)
	}
	return fmt.Sprintf("flash sale %q is live for 3 hours: 50 units, one per shopper", DemoSale), nil
}
