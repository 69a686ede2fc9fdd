package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
	"flashedge/shared/product"
)

// DefaultDemoProducts is how many products the demo catalog has unless told otherwise.
const DefaultDemoProducts = 1200

// seedBatch is how many products one pipelined round trip writes.
const seedBatch = 300

// seedLockTTL bounds how long a crashed seeder keeps others from seeding.
const seedLockTTL = 2 * time.Minute

// SeedDemo fills an empty catalog with the n products of DemoProducts and returns how many it
// wrote. It does nothing and returns 0 when the index already holds a product or when another
// process holds the seed lock (it is seeding right now), so it is safe to call on every start.
// Writes are pipelined in batches; each batch's documents and stock are written before its ids
// enter the index.
func (s *Store) SeedDemo(ctx context.Context, n int) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	if have, err := s.Count(ctx); err != nil || have > 0 {
		return 0, err
	}
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	lock := s.c.B().Set().Key(keyspace.CatalogSeedLock()).Value(hex.EncodeToString(tok[:])).
		Nx().Px(seedLockTTL).Build()
	if err := s.c.Do(ctx, lock).Error(); err != nil {
		if rueidis.IsRedisNil(err) { // NX refused: someone else seeds
			return 0, nil
		}
		return 0, unavailable("take seed lock", err)
	}
	defer func() {
		// The lock only guards the window before the index fills; drop it even if ctx ended.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = s.c.Do(dctx, s.c.B().Del().Key(keyspace.CatalogSeedLock()).Build()).Error()
	}()
	if have, err := s.Count(ctx); err != nil || have > 0 { // seeded while we took the lock
		return 0, err
	}

	last, err := s.c.Do(ctx, s.c.B().Incrby().Key(keyspace.ProductSeq()).Increment(int64(n)).Build()).AsInt64()
	if err != nil {
		return 0, unavailable("draw product ids", err)
	}
	first := last - int64(n) + 1
	products := DemoProducts(n)
	written := 0
	for start := 0; start < n; start += seedBatch {
		end := min(start+seedBatch, n)
		cmds := make(rueidis.Commands, 0, 2*(end-start))
		add := s.c.B().Zadd().Key(keyspace.ProductIndex()).ScoreMember()
		for i := start; i < end; i++ {
			p := products[i]
			p.ID = FormatID(first + int64(i))
			cmds = append(cmds,
				s.c.B().Set().Key(keyspace.Product(p.ID)).Value(string(product.Marshal(p.Doc))).Build(),
				s.c.B().Set().Key(keyspace.ProductStock(p.ID)).Value(fmt.Sprint(p.Stock)).Build())
			add = add.ScoreMember(0, p.ID)
		}
		for _, r := range s.c.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return written, unavailable("write demo products", err)
			}
		}
		if err := s.c.Do(ctx, add.Build()).Error(); err != nil {
			return written, unavailable("index demo products", err)
		}
		written += end - start
	}
	return written, nil
}

// DemoProducts generates n products of a plausible Vietnamese online shop: names built from a
// category, brand, variant and colour, prices in VND rounded to 1,000 within a range that fits
// the category, a short Vietnamese description, an image path "/img/<category>.svg" and a stock
// that is mostly plenty, sometimes low and sometimes zero. IDs are left empty.
//
// The result is deterministic: the same n gives the same products, and the first k products of
// any n > k are DemoProducts(k).
func DemoProducts(n int) []Product {
	rng := mrand.New(mrand.NewPCG(20240901, 5001))
	seen := make(map[string]bool, n)
	out := make([]Product, 0, n)
	for len(out) < n {
		c, name := drawDemoName(rng)
		// Redraw a name the shop already has; after a few misses (only when n nears the number of
		// distinct names) number it instead, which keeps the loop finite.
		for try := 0; seen[name]; try++ {
			if try == 20 {
				name = fmt.Sprintf("%s (mẫu %d)", name, len(out)+1)
				break
			}
			c, name = drawDemoName(rng)
		}
		seen[name] = true
		out = append(out, Product{
			Doc: product.Doc{
				Name:        name,
				Description: c.blurbs[rng.IntN(len(c.blurbs))] + " " + demoClosers[rng.IntN(len(demoClosers))],
				Price:       demoPrice(rng, c.minPrice, c.maxPrice),
				Currency:    product.DefaultCurrency,
				Image:       "/img/" + c.slug + ".svg",
			},
			Stock: demoStock(rng),
		})
	}
	return out
}

func drawDemoName(rng *mrand.Rand) (*demoCategory, string) {
	c := &demoCategories[rng.IntN(len(demoCategories))]
	name := c.nouns[rng.IntN(len(c.nouns))] + " " + c.brands[rng.IntN(len(c.brands))] +
		" " + c.variants[rng.IntN(len(c.variants))]
	if c.colours {
		name += " - " + demoColours[rng.IntN(len(demoColours))]
	}
	return c, name
}

// demoPrice draws a price spread evenly on a log scale between lo and hi, so cheap variants are
// as common as dear ones, then gives it the shop look of "249.000 ₫": whole thousands, and below
// a round ten thousand once it is over 100,000.
func demoPrice(rng *mrand.Rand, lo, hi int64) int64 {
	p := math.Exp(math.Log(float64(lo)) + rng.Float64()*(math.Log(float64(hi))-math.Log(float64(lo))))
	price := int64(math.Round(p/1000)) * 1000
	if price > 100_000 {
		price = int64(math.Round(p/10_000))*10_000 - 1000
	}
	return max(price, 1000)
}

// demoStock: about 7% sold out, 13% low (1..LowStock), the rest 20..500.
func demoStock(rng *mrand.Rand) int64 {
	switch r := rng.IntN(100); {
	case r < 7:
		return 0
	case r < 20:
		return 1 + rng.Int64N(product.LowStock)
	default:
		return 20 + rng.Int64N(481)
	}
}

type demoCategory struct {
	slug     string // image name
	nouns    []string
	brands   []string
	variants []string
	colours  bool
	minPrice int64 // VND
	maxPrice int64
	blurbs   []string
}

var demoColours = []string{"Đen", "Trắng", "Xám", "Xanh navy", "Be", "Đỏ đô", "Xanh rêu", "Hồng pastel"}

var demoClosers = []string{
	"Hàng chính hãng, bảo hành 12 tháng.",
	"Giao nhanh 2 giờ nội thành Hà Nội và TP.HCM.",
	"Đổi trả miễn phí trong 7 ngày nếu có lỗi từ nhà sản xuất.",
	"Freeship cho đơn từ 300.000 ₫.",
	"Được kiểm tra hàng trước khi thanh toán.",
	"Hoàn tiền 200% nếu phát hiện hàng giả.",
}

var demoCategories = []demoCategory{
	{
		slug: "ao-thun", colours: true, minPrice: 99_000, maxPrice: 450_000,
		nouns:    []string{"Áo thun nam", "Áo thun nữ", "Áo thun unisex", "Áo polo nam", "Áo thun trẻ em"},
		brands:   []string{"Coolmate", "Yody", "Routine", "Canifa", "Owen"},
		variants: []string{"cổ tròn cotton 100%", "form rộng oversize", "thể thao thoáng khí", "in hình basic", "cổ bẻ vải cá sấu"},
		blurbs: []string{
			"Chất vải mềm, thấm hút mồ hôi tốt, mặc mát cả ngày hè.",
			"Đường may chắc chắn, giặt máy không bai không xù.",
			"Dáng áo dễ phối với quần jean, quần short hay quần âu.",
		},
	},
	{
		slug: "quan-jean", colours: true, minPrice: 199_000, maxPrice: 1_200_000,
		nouns:    []string{"Quần jean nam ống suông", "Quần jean nữ lưng cao", "Quần kaki nam", "Quần short jean", "Quần jogger"},
		brands:   []string{"Levi's", "Routine", "Yody", "Ivy moda", "Aristino"},
		variants: []string{"co giãn 4 chiều", "dáng slim fit", "wash nhẹ", "vải denim dày dặn", "có túi hộp"},
		blurbs: []string{
			"Vải co giãn nhẹ, ôm dáng vừa phải, thoải mái khi ngồi lâu.",
			"Màu nhuộm bền, không phai sau nhiều lần giặt.",
		},
	},
	{
		slug: "giay", colours: true, minPrice: 150_000, maxPrice: 3_500_000,
		nouns:    []string{"Giày thể thao", "Giày sneaker", "Dép quai ngang", "Giày chạy bộ", "Giày lười"},
		brands:   []string{"Biti's Hunter", "Nike", "Adidas", "Ananas", "Vans"},
		variants: []string{"đế êm siêu nhẹ", "size 39-44", "chống trơn trượt", "thoáng khí", "phiên bản 2024"},
		blurbs: []string{
			"Đế cao su bám đường, đệm êm giảm chấn cho cả ngày di chuyển.",
			"Thiết kế trẻ trung, dễ phối đồ đi học, đi làm hay đi chơi.",
		},
	},
	{
		slug: "noi-com-dien", minPrice: 450_000, maxPrice: 6_500_000,
		nouns:    []string{"Nồi cơm điện", "Nồi cơm điện tử", "Nồi cơm cao tần"},
		brands:   []string{"Sharp", "Cuckoo", "Toshiba", "Sunhouse", "Panasonic"},
		variants: []string{"1.0L", "1.2L", "1.8L", "lòng niêu chống dính", "nắp gài 10 chế độ nấu"},
		blurbs: []string{
			"Lòng nồi dày phủ chống dính, cơm chín đều, giữ ấm đến 12 giờ.",
			"Nhiều chế độ nấu: cơm trắng, cơm gạo lứt, cháo, hấp và nấu chậm.",
		},
	},
	{
		slug: "noi-chien", minPrice: 900_000, maxPrice: 4_500_000,
		nouns:    []string{"Nồi chiên không dầu", "Nồi chiên không dầu điện tử", "Lò chiên không dầu"},
		brands:   []string{"Lock&Lock", "Philips", "Sunhouse", "Xiaomi", "Kangaroo"},
		variants: []string{"4.5L", "5.5L", "6.5L", "12L", "màn hình cảm ứng"},
		blurbs: []string{
			"Chiên, nướng, sấy ít dầu mỡ, món ăn giòn ngon mà vẫn lành mạnh.",
			"Khay chống dính tháo rời, rửa được bằng máy rửa bát.",
		},
	},
	{
		slug: "tai-nghe", minPrice: 150_000, maxPrice: 8_000_000,
		nouns:    []string{"Tai nghe Bluetooth", "Tai nghe true wireless", "Tai nghe chụp tai", "Tai nghe có dây"},
		brands:   []string{"Sony", "JBL", "Xiaomi", "Soundcore", "Samsung"},
		variants: []string{"chống ồn ANC", "pin 30 giờ", "chống nước IPX4", "bass mạnh", "có micro đàm thoại"},
		blurbs: []string{
			"Âm thanh rõ nét, kết nối ổn định, đeo lâu không đau tai.",
			"Sạc nhanh 10 phút nghe 2 giờ, kèm hộp sạc nhỏ gọn.",
		},
	},
	{
		slug: "dien-thoai", colours: true, minPrice: 2_500_000, maxPrice: 35_000_000,
		nouns:    []string{"Điện thoại"},
		brands:   []string{"Samsung Galaxy A55", "Xiaomi Redmi Note 13", "iPhone 15", "OPPO Reno11", "vivo Y36", "realme C67"},
		variants: []string{"128GB", "256GB", "8GB/256GB", "12GB/512GB", "bản quốc tế"},
		blurbs: []string{
			"Màn hình sắc nét, camera chụp đêm tốt, pin dùng trọn một ngày.",
			"Máy mới nguyên seal, đầy đủ phụ kiện, hỗ trợ trả góp 0%.",
		},
	},
	{
		slug: "ca-phe", minPrice: 45_000, maxPrice: 450_000,
		nouns:    []string{"Cà phê rang xay", "Cà phê hòa tan 3in1", "Cà phê hạt Robusta", "Cà phê phin giấy", "Cà phê sữa đá"},
		brands:   []string{"Trung Nguyên", "Highlands Coffee", "G7", "Phúc Long", "Mê Trang"},
		variants: []string{"gói 500g", "hộp 20 gói", "túi 1kg", "hộp 10 túi lọc", "lon 235ml"},
		blurbs: []string{
			"Hạt cà phê Buôn Ma Thuột rang mộc, vị đậm, hậu ngọt.",
			"Pha phin hay pha máy đều thơm, hợp uống đá buổi sáng.",
		},
	},
	{
		slug: "my-pham", minPrice: 89_000, maxPrice: 990_000,
		nouns:    []string{"Kem chống nắng", "Sữa rửa mặt", "Son kem lì", "Nước tẩy trang", "Serum vitamin C"},
		brands:   []string{"Cocoon", "La Roche-Posay", "Innisfree", "Bioderma", "3CE"},
		variants: []string{"50ml", "150ml", "cho da dầu mụn", "dịu nhẹ da nhạy cảm", "bản mini du lịch"},
		blurbs: []string{
			"Kết cấu mỏng nhẹ, thấm nhanh, không để lại vệt trắng hay bết dính.",
			"Thành phần lành tính, đã kiểm nghiệm da liễu, phù hợp khí hậu nóng ẩm.",
		},
	},
	{
		slug: "quat-dien", minPrice: 250_000, maxPrice: 4_500_000,
		nouns:    []string{"Quạt đứng", "Quạt cây", "Quạt tích điện", "Quạt điều hòa", "Quạt treo tường"},
		brands:   []string{"Senko", "Asia", "Panasonic", "Kangaroo", "Mitsubishi"},
		variants: []string{"5 cánh", "có điều khiển từ xa", "hẹn giờ tắt", "tiết kiệm điện", "chạy êm"},
		blurbs: []string{
			"Gió mạnh và êm, ba tốc độ, thích hợp phòng ngủ và phòng khách.",
			"Động cơ bền, tiết kiệm điện, lồng quạt an toàn cho trẻ nhỏ.",
		},
	},
	{
		slug: "balo", colours: true, minPrice: 190_000, maxPrice: 3_500_000,
		nouns:    []string{"Balo laptop", "Túi đeo chéo", "Vali kéo 20 inch", "Balo du lịch", "Túi tote canvas"},
		brands:   []string{"Mikkor", "Simplecarry", "Tomtoc", "Samsonite", "Herschel"},
		variants: []string{"chống nước", "ngăn laptop 15.6 inch", "có cổng sạc USB", "siêu nhẹ", "khóa TSA"},
		blurbs: []string{
			"Nhiều ngăn tiện lợi, quai đeo êm vai, vải chống thấm nước.",
			"Kiểu dáng gọn gàng, hợp đi làm, đi học và công tác ngắn ngày.",
		},
	},
	{
		slug: "sach", minPrice: 59_000, maxPrice: 350_000,
		nouns:    []string{"Sách Đắc Nhân Tâm", "Sách Nhà Giả Kim", "Sách Cây Cam Ngọt Của Tôi", "Sách Dế Mèn Phiêu Lưu Ký", "Sách Tuổi Trẻ Đáng Giá Bao Nhiêu", "Sách Mắt Biếc"},
		brands:   []string{"NXB Trẻ", "Nhã Nam", "NXB Kim Đồng", "First News", "Alpha Books"},
		variants: []string{"bìa mềm", "bìa cứng", "tái bản 2024", "bản đặc biệt", "kèm bookmark"},
		blurbs: []string{
			"Giấy in đẹp, chữ rõ, bọc màng co cẩn thận khi giao.",
			"Một cuốn sách nên có trên kệ, đọc lại vẫn thấy điều mới.",
		},
	},
	{
		slug: "do-choi", minPrice: 79_000, maxPrice: 2_500_000,
		nouns:    []string{"Bộ lego xếp hình", "Xe điều khiển từ xa", "Gấu bông", "Bộ đồ chơi nấu ăn", "Bộ xếp hình nam châm"},
		brands:   []string{"LEGO", "Hot Wheels", "Antona", "Duka", "Vietoys"},
		variants: []string{"cho bé 3-6 tuổi", "120 chi tiết", "pin sạc", "cỡ lớn 80cm", "nhựa an toàn"},
		blurbs: []string{
			"Chất liệu an toàn, đạt chuẩn đồ chơi trẻ em, giúp bé phát triển tư duy.",
			"Quà tặng sinh nhật ý nghĩa, đóng hộp đẹp.",
		},
	},
	{
		slug: "binh-giu-nhiet", colours: true, minPrice: 99_000, maxPrice: 890_000,
		nouns:    []string{"Bình giữ nhiệt", "Ly giữ nhiệt", "Bình nước thể thao", "Hộp cơm giữ nhiệt"},
		brands:   []string{"Lock&Lock", "Elmich", "Tiger", "Thermos", "Zojirushi"},
		variants: []string{"500ml", "750ml", "1 lít", "inox 304", "có ống hút"},
		blurbs: []string{
			"Giữ nóng 12 giờ, giữ lạnh 24 giờ, nắp kín không rò rỉ.",
			"Inox 304 an toàn, nhỏ gọn bỏ vừa balo.",
		},
	},
	{
		slug: "ban-phim-chuot", minPrice: 150_000, maxPrice: 3_900_000,
		nouns:    []string{"Bàn phím cơ", "Chuột không dây", "Bàn phím Bluetooth", "Chuột gaming", "Combo phím chuột"},
		brands:   []string{"Logitech", "Akko", "Razer", "DareU", "Fuhlen"},
		variants: []string{"switch Blue", "LED RGB", "kết nối 3 chế độ", "pin sạc USB-C", "layout 87 phím"},
		blurbs: []string{
			"Gõ êm, phản hồi nhanh, hợp cả làm việc lẫn chơi game.",
			"Kết nối ổn định, dùng được với Windows, macOS, iPad.",
		},
	},
	{
		slug: "do-an-vat", minPrice: 35_000, maxPrice: 320_000,
		nouns:    []string{"Bánh tráng trộn", "Khô gà lá chanh", "Hạt điều rang muối", "Mít sấy giòn", "Rong biển sấy"},
		brands:   []string{"Đặc sản Tây Ninh", "Tiệm Cô Ba", "Vinamit", "DGfoods", "Ăn Vặt Sài Gòn"},
		variants: []string{"hũ 500g", "túi 250g", "combo 3 gói", "vị cay", "hộp quà tết"},
		blurbs: []string{
			"Làm mới mỗi ngày, đóng gói hút chân không, giòn ngon đậm vị.",
			"Món ăn vặt quen thuộc cho giờ xem phim và tụ tập bạn bè.",
		},
	},
	{
		slug: "sua", minPrice: 30_000, maxPrice: 480_000,
		nouns:    []string{"Sữa tươi tiệt trùng", "Sữa hạt óc chó", "Sữa chua uống", "Sữa đậu nành"},
		brands:   []string{"Vinamilk", "TH true MILK", "Dalat Milk", "Nutifood", "Vinasoy"},
		variants: []string{"thùng 48 hộp 180ml", "lốc 4 hộp", "hộp 1 lít", "ít đường", "không đường"},
		blurbs: []string{
			"Sữa từ trang trại trong nước, giàu canxi và vitamin D.",
			"Hạn sử dụng dài, bảo quản nơi khô mát, ngon hơn khi uống lạnh.",
		},
	},
	{
		slug: "dong-ho", colours: true, minPrice: 390_000, maxPrice: 12_000_000,
		nouns:    []string{"Đồng hồ thông minh", "Vòng đeo tay thông minh", "Đồng hồ nam dây da", "Đồng hồ nữ dây kim loại"},
		brands:   []string{"Xiaomi", "Huawei", "Amazfit", "Casio", "Garmin"},
		variants: []string{"đo nhịp tim SpO2", "chống nước 5ATM", "pin 14 ngày", "mặt kính sapphire", "có GPS"},
		blurbs: []string{
			"Theo dõi sức khỏe, giấc ngủ và luyện tập, nhận thông báo từ điện thoại.",
			"Thiết kế thanh lịch, đeo nhẹ tay, hợp cả đi làm lẫn đi chơi.",
		},
	},
}
