//! The shop's fixed vocabulary: categories, their subcategories (with the nouns, attribute words
//! and typical price a title and a query are made of), brand names and colours.
//!
//! These tables are part of the generator: changing them changes every export, so bump
//! `GENERATOR_VERSION` in `export` when editing them.

/// A subcategory: `id` is what `items.csv` writes, `noun` what titles and queries say.
pub(crate) struct SubcategorySpec {
    pub id: &'static str,
    pub noun: &'static str,
    pub attributes: &'static [&'static str],
    /// Median price of a mid-tier item, in the shop's currency.
    pub median_price: f64,
    /// Whether titles end with a colour.
    pub coloured: bool,
}

pub(crate) struct CategorySpec {
    pub id: &'static str,
    pub subcategories: &'static [SubcategorySpec],
    pub brands: &'static [&'static str],
}

const fn sub(
    id: &'static str,
    noun: &'static str,
    attributes: &'static [&'static str],
    median_price: f64,
    coloured: bool,
) -> SubcategorySpec {
    SubcategorySpec { id, noun, attributes, median_price, coloured }
}

pub(crate) const COLOURS: &[&str] =
    &["black", "white", "silver", "blue", "red", "green", "grey", "navy", "pink", "beige"];

pub(crate) const CATEGORIES: &[CategorySpec] = &[
    CategorySpec {
        id: "electronics",
        subcategories: &[
            sub(
                "headphones",
                "headphones",
                &["wireless", "noise-cancelling", "over-ear", "bluetooth", "studio", "in-ear"],
                80.0,
                true,
            ),
            sub("smartphones", "smartphone", &["5g", "dual-sim", "128gb", "256gb", "unlocked", "compact"], 420.0, true),
            sub(
                "laptops",
                "laptop",
                &["14-inch", "16-inch", "lightweight", "gaming", "16gb", "touchscreen"],
                950.0,
                true,
            ),
            sub("smartwatches", "smartwatch", &["fitness", "gps", "waterproof", "amoled", "heart-rate"], 210.0, true),
            sub("speakers", "speaker", &["bluetooth", "portable", "waterproof", "smart", "bass"], 70.0, true),
            sub("cameras", "camera", &["mirrorless", "4k", "compact", "action", "instant"], 620.0, false),
        ],
        brands: &["Nordlys", "Voltra", "Auralis", "Kepler", "Zentro", "Pixelon", "Sonique", "Brio"],
    },
    CategorySpec {
        id: "fashion",
        subcategories: &[
            sub("sneakers", "sneakers", &["leather", "low-top", "classic", "canvas", "chunky"], 85.0, true),
            sub("jeans", "jeans", &["slim", "stretch", "straight", "high-waist", "relaxed"], 60.0, true),
            sub("dresses", "dress", &["summer", "floral", "midi", "maxi", "wrap"], 55.0, true),
            sub("jackets", "jacket", &["rain", "down", "lightweight", "denim", "leather"], 120.0, true),
            sub("t_shirts", "t-shirt", &["cotton", "organic", "crew-neck", "oversized", "striped"], 20.0, true),
            sub("handbags", "handbag", &["leather", "crossbody", "tote", "mini", "vegan"], 95.0, true),
        ],
        brands: &["Maren", "Vellum", "Oakridge", "Lumi", "Corvo", "Stitchworks", "Alba", "Rivet"],
    },
    CategorySpec {
        id: "home",
        subcategories: &[
            sub(
                "coffee_makers",
                "coffee maker",
                &["espresso", "drip", "programmable", "capsule", "milk-frother"],
                130.0,
                true,
            ),
            sub(
                "vacuum_cleaners",
                "vacuum cleaner",
                &["cordless", "robot", "bagless", "handheld", "pet-hair"],
                220.0,
                false,
            ),
            sub("bedding", "duvet cover", &["cotton", "linen", "king-size", "double", "percale"], 45.0, true),
            sub("lamps", "lamp", &["led", "desk", "floor", "dimmable", "bedside"], 40.0, true),
            sub("cookware", "frying pan", &["non-stick", "cast-iron", "stainless", "induction", "28cm"], 35.0, false),
        ],
        brands: &["Hearthly", "Casalto", "Brewmont", "Duna", "Kovo", "Linden", "Vaska"],
    },
    CategorySpec {
        id: "sports",
        subcategories: &[
            sub(
                "running_shoes",
                "running shoes",
                &["trail", "cushioned", "lightweight", "racing", "waterproof"],
                110.0,
                true,
            ),
            sub("yoga_mats", "yoga mat", &["non-slip", "thick", "eco", "travel", "cork"], 30.0, true),
            sub("bikes", "bike", &["road", "mountain", "electric", "gravel", "folding"], 700.0, true),
            sub("dumbbells", "dumbbells", &["adjustable", "rubber", "hex", "neoprene", "set"], 50.0, false),
            sub("tents", "tent", &["camping", "2-person", "4-person", "waterproof", "ultralight"], 150.0, true),
        ],
        brands: &["Stride", "Peakform", "Trailhead", "Vigor", "Aerofit", "Summit", "Kinetic"],
    },
    CategorySpec {
        id: "beauty",
        subcategories: &[
            sub("skincare", "face cream", &["moisturizing", "anti-aging", "spf", "night", "sensitive"], 28.0, false),
            sub("perfume", "perfume", &["floral", "woody", "citrus", "eau-de-parfum", "musk"], 65.0, false),
            sub("haircare", "shampoo", &["repair", "sulfate-free", "volume", "anti-dandruff", "argan"], 12.0, false),
            sub("makeup", "lipstick", &["matte", "long-lasting", "nude", "glossy", "vegan"], 18.0, true),
        ],
        brands: &["Lumea", "Veloura", "Petalia", "Noor", "Aurum", "Solenne"],
    },
    CategorySpec {
        id: "toys",
        subcategories: &[
            sub("building_sets", "building set", &["creative", "city", "space", "castle", "technic"], 45.0, false),
            sub("board_games", "board game", &["family", "strategy", "party", "cooperative", "classic"], 35.0, false),
            sub("dolls", "doll", &["fashion", "baby", "rag", "collectible"], 25.0, false),
            sub("puzzles", "puzzle", &["1000-piece", "jigsaw", "3d", "wooden", "kids"], 18.0, false),
        ],
        brands: &["Brickly", "Tinker", "Joyco", "Playwell", "Pipsqueak", "Mosaic"],
    },
    CategorySpec {
        id: "books",
        subcategories: &[
            sub(
                "novels",
                "novel",
                &["mystery", "romance", "thriller", "fantasy", "historical", "paperback"],
                14.0,
                false,
            ),
            sub("cookbooks", "cookbook", &["vegan", "baking", "italian", "quick", "healthy"], 25.0, false),
            sub("childrens_books", "picture book", &["bedtime", "illustrated", "animals", "first-words"], 11.0, false),
            sub(
                "business_books",
                "business book",
                &["leadership", "investing", "startup", "productivity"],
                22.0,
                false,
            ),
        ],
        brands: &["Inkwell", "Harbor", "Quill", "Paperlane", "Lantern", "Folio"],
    },
    CategorySpec {
        id: "grocery",
        subcategories: &[
            sub("coffee", "coffee beans", &["arabica", "organic", "dark-roast", "espresso", "decaf"], 14.0, false),
            sub("tea", "tea", &["green", "herbal", "loose-leaf", "chai", "earl-grey"], 8.0, false),
            sub("snacks", "snack bars", &["protein", "gluten-free", "chocolate", "nut", "oat"], 6.0, false),
            sub("pet_food", "dog food", &["grain-free", "puppy", "dry", "senior", "salmon"], 40.0, false),
        ],
        brands: &["Goldleaf", "Terra", "Meadowfield", "Bramble", "Kettleworth", "Harvest"],
    },
];

/// A flattened subcategory with its category's index, in the order of `CATEGORIES`.
pub(crate) struct Subcategory {
    pub category: usize,
    pub spec: &'static SubcategorySpec,
}

pub(crate) fn subcategories() -> Vec<Subcategory> {
    CATEGORIES
        .iter()
        .enumerate()
        .flat_map(|(c, cat)| cat.subcategories.iter().map(move |spec| Subcategory { category: c, spec }))
        .collect()
}

/// Words a shopper interested in a subcategory types into the search box: the noun alone, an
/// attribute and the noun, or (for `brand`) the brand and the noun. Lowercase.
pub(crate) fn query_for(spec: &SubcategorySpec, attribute: Option<&str>, brand: Option<&str>) -> String {
    let mut q = String::new();
    if let Some(b) = brand {
        q.push_str(&b.to_lowercase());
        q.push(' ');
    }
    if let Some(a) = attribute {
        q.push_str(&a.replace('-', " "));
        q.push(' ');
    }
    q.push_str(spec.noun);
    q
}
