"""Vocabulary of the generated shop: names, titles, tags, notes, addresses, currencies.

Tables only (realistic values with accents, emoji, Arabic and Hebrew). The generators index them
with draws from a seeded ``random.Random``, so reordering or editing an entry changes the data.
"""

from __future__ import annotations

SHOP_CURRENCY = "USD"
# (code, rate ×10000 from USD, decimals)
PRESENTMENT = (("EUR", 9200, 2), ("CAD", 13600, 2), ("ILS", 37000, 2), ("AED", 36700, 2), ("JPY", 1_490_000, 0))

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Zoë", "José", "Søren", "Ayşe", "محمد", "فاطمة", "נועה", "אברהם",
    "Yuki", "李", "Oluwaseun", "Chloé", "Mateo", "Amélie", "Ingrid", "Priya", "Łukasz", "Björn",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "García", "Müller", "O'Brien", "Nguyen", "Kowalski", "العلي", "حداد", "כהן", "לוי", "Tanaka",
    "王", "Dubois", "Rossi", "Ivanova", "Okafor", "Johansson", "Da Silva", "Ørsted", "van der Berg",
)  # fmt: skip
COMPANIES = ("Acme Corp", "Globex GmbH", "שלום בע״מ", "شركة النور", "Initech 🚀", "Café Société")
ADJECTIVES = ("Classic", "Organic", "Vintage", "Ultra-light", "Handmade", "Recycled", "Cozy", "Premium", "Café")
NOUNS = ("T-Shirt", "Hoodie", "Mug", "Backpack", "Sneakers", "Candle", "Notebook", "Scarf", "Water Bottle", "Sunglasses")
UNICODE_TITLES = ("قميص قطني", "כוס קפה ☕", "Bonsai 🌱 kit", "Crème brûlée torch 🔥", "ספר מתכונים", "وشاح حريري")
VENDORS = ("Acme Co", "Nordic Threads", "Café Ümlaut", "Tel Aviv Makers", "دار الحرف", "🌈 Rainbow Goods")
PRODUCT_TYPES = ("Apparel", "Home", "Accessories", "Footwear", "Stationery", "")
TAGS = ("vip", "wholesale", "gift", "eco", "sale", "preorder", "returning", "מבצע", "هدية", "🔥hot")
NOTES = (
    "Please gift wrap 🎁",
    "Leave at the back door",
    "اتصل قبل التوصيل",
    "נא להשאיר ליד הדלת",
    'Multi-line\nnote with "quotes" and a \\ backslash',
    "Délivrer après 18h",
    "👍",
)
SIZES = ("XS", "S", "M", "L", "XL")
COLORS = ("Black", "White", "Navy", "ירוק", "أحمر", "🌈 Multi")
GATEWAYS = ("shopify_payments", "paypal", "manual", "gift_card")
CANCEL_REASONS = ("CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF")
COLLECTION_SORTS = ("MANUAL", "BEST_SELLING", "ALPHA_ASC", "ALPHA_DESC", "CREATED", "CREATED_DESC", "PRICE_ASC")
LOCALES = ("en", "en", "en", "fr", "de", "he", "ar", "ja", "pt-BR")
# city, province, provinceCode, zip, country, countryCodeV2, phone prefix, tax rate ‰, streets
ADDRESSES = (
    ("New York", "New York", "NY", "10001", "United States", "US", "+1212555", 88, ("350 5th Ave", "11 Wall St")),
    ("San Francisco", "California", "CA", "94103", "United States", "US", "+1415555", 86, ("1 Market St",)),
    ("Toronto", "Ontario", "ON", "M5V 2T6", "Canada", "CA", "+1416555", 130, ("290 Bremner Blvd",)),
    ("Berlin", "Berlin", "BE", "10115", "Germany", "DE", "+4930555", 190, ("Hauptstraße 5", "Unter den Linden 1")),
    ("Tel Aviv", None, None, "6100000", "Israel", "IL", "+9723555", 170, ("שדרות רוטשילד 10",)),
    ("Dubai", "Dubai", "DU", "00000", "United Arab Emirates", "AE", "+9714555", 50, ("شارع الشيخ زايد 1",)),
    ("Tokyo", "Tokyo", "JP-13", "100-0001", "Japan", "JP", "+8135555", 100, ("1-1 Chiyoda",)),
    ("London", None, None, "SW1A 1AA", "United Kingdom", "GB", "+4420555", 200, ("10 Downing St",)),
    ("São Paulo", "São Paulo", "SP", "01000-000", "Brazil", "BR", "+5511555", 170, ("Av. Paulista 1000",)),
)
LOCATION_NAMES = ("Main Warehouse", "מחסן תל אביב", "متجر دبي", "Pop-up 🎪 Store", "Legacy 3PL", "Berlin Lager")

