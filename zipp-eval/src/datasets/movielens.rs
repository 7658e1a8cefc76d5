//! The real-data persona bench: one [`Persona`] per MovieLens 100K user (SPEC §11).
//!
//! Enabled by zipp-core's cargo feature **`movielens`** (off by default: it adds a parquet
//! reader to the build).
//!
//! ## Data
//! GroupLens's MovieLens 100K (943 users, 1682 movies, 100,000 ratings of 1–5 stars) as the
//! three brotli-compressed parquet files `scripts/provision-models.sh` fetches and
//! sha256-verifies into `<models dir>/movielens-100k/` ([`DATA_DIR`], under
//! [`default_models_dir`]):
//!
//! | file | columns read |
//! |---|---|
//! | [`USERS_FILE`] | `user_id`, `age`, `gender` (`F`/`M`), `occupation` |
//! | [`MOVIES_FILE`] | `movie_id`, `movie_title`, `release_date`, the 19 genre flags of [`GENRES`] |
//! | [`RATINGS_FILE`] | `user_id`, `movie_id`, `rating`, `timestamp` |
//!
//! Other columns (`zip_code`, `IMDb_URL` …) are never read. The GroupLens licence allows
//! research use but **no redistribution**: the files are only ever fetched at setup, never
//! committed, and no persona built from them may be shipped either.
//!
//! ## Personas
//! User 42 becomes persona `ml100k-42`:
//! - `demographics`: only what the data evidences: `age_band` (from the age), `gender`
//!   (`female`/`male`), `profession` (the occupation as given, `none` and `other` included).
//!   The zip code is left out (needlessly identifying).
//! - `interests`: their most frequent genres among ratings of 4 and 5 (up to
//!   [`MAX_INTERESTS`]), as phrases such as `"comedies"` or `"film noir"`.
//! - `preferences`: `liked` / `disliked` are the genres whose average rating is at least a
//!   quarter star above / below the user's own average, each evidenced by at least
//!   [`MIN_GENRE_RATINGS`] ratings (up to [`MAX_PREFERENCES`] each, strongest first).
//! - `summary`: a short text built from the above and a few favourite titles.
//! - `memory`: up to [`MovieLensOptions::max_posts`] rated movies, chosen deterministically:
//!   highest rating first, then most recent, then lowest movie id. Post `m<movie_id>` reads
//!   `"The Harbour Lights (1988), rated 5 out of 5: Crime, Thriller."` with elements
//!   `{"genre": ["Crime", "Thriller"], "era": ["1980s"]}` (the rating stays in the caption: as an
//!   element, "5 of 5" would be retrieved into image prompts as if it were visual). Titles are
//!   shown with a trailing article moved to the front (`"Harbour Lights, The (1988)"` reads
//!   `"The Harbour Lights (1988)"`); the `unknown` genre flag is never shown as a genre.
//!
//! ## Errors
//! A missing folder or file is [`Error::ModelNotFound`] with the provisioning hint; a file
//! that is not readable parquet (truncated, corrupt) is [`Error::ModelInvalid`] naming it;
//! a missing column, a column of the wrong type, a null or out-of-range value, a duplicate
//! id or a rating of an unknown user or movie is [`Error::Schema`] located by file and
//! column, the message naming the row (counted from 1). Loading never panics on bad input.
//!
//! ```no_run
//! use zipp_eval::datasets::movielens::{MovieLens, MovieLensOptions};
//! let bench = MovieLens::load_default()?;
//! for persona in bench.personas(&MovieLensOptions::default()) {
//!     println!("{}", persona?.to_json_string(false)?);
//! }
//! # Ok::<(), zipp_core::Error>(())
//! ```

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::Type as PhysicalType;
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::{ByteArrayType, DataType, Int32Type, Int64Type};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::schema::types::ColumnDescPtr;

use zipp_core::error::{Error, Location, Result};
use zipp_core::models::{default_models_dir, PROVISION_HINT};
use zipp_core::{Persona, Post};

/// Folder of the MovieLens 100K files inside [`default_models_dir`].
pub const DATA_DIR: &str = "movielens-100k";
/// The users table: `user_id`, `age`, `gender`, `occupation`, `zip_code`.
pub const USERS_FILE: &str = "MovieLens100k_users.parquet.brotli";
/// The movies ("items") table: `movie_id`, `movie_title`, `release_date`, …, genre flags.
pub const MOVIES_FILE: &str = "MovieLens100k_items.parquet.brotli";
/// The ratings table: `user_id`, `movie_id`, `rating`, `timestamp`.
pub const RATINGS_FILE: &str = "MovieLens100k_data.parquet.brotli";

/// The 19 genre flag columns of the movies table, in file order. `unknown` marks a movie
/// whose genre was not recorded; it is read but never shown as a genre.
pub const GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// How each of [`GENRES`] reads in prose (interests, preferences, summary).
const GENRE_PHRASES: [&str; 19] = [
    "films of unrecorded genre",
    "action films",
    "adventure films",
    "animated films",
    "children's films",
    "comedies",
    "crime films",
    "documentaries",
    "dramas",
    "fantasy films",
    "film noir",
    "horror films",
    "musicals",
    "mysteries",
    "romances",
    "science fiction films",
    "thrillers",
    "war films",
    "westerns",
];

/// Bit of the `unknown` genre flag in a movie's genre mask.
const UNKNOWN_GENRE: u32 = 1;

/// At most this many `interests` per persona.
pub const MAX_INTERESTS: usize = 5;
/// At most this many `liked` and this many `disliked` genres per persona.
pub const MAX_PREFERENCES: usize = 3;
/// A genre enters `liked` or `disliked` only with at least this many ratings.
pub const MIN_GENRE_RATINGS: i64 = 3;
/// Favourite titles named in the summary.
const SUMMARY_TITLES: usize = 3;
/// Genres named in the summary.
const SUMMARY_GENRES: usize = 3;

/// The `model` name the bench's not-found / unusable errors carry.
const MODEL: &str = "movielens-100k";

/// How personas are built from the ratings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MovieLensOptions {
    /// At most this many rated movies become memory posts (30, like VPTT-Bench).
    pub max_posts: usize,
    /// Only ratings of at least this many stars (1–5) become posts; `None` keeps all.
    /// Interests, preferences and the summary always use every rating.
    pub min_rating: Option<u8>,
}

impl Default for MovieLensOptions {
    fn default() -> Self {
        MovieLensOptions { max_posts: 30, min_rating: None }
    }
}

impl MovieLensOptions {
    fn check(&self) -> Result<()> {
        match self.min_rating {
            Some(r) if !(1..=5).contains(&r) => {
                Err(Error::InvalidInput(format!("min_rating {r} is outside the 1-5 star scale of MovieLens")))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gender {
    Female,
    Male,
}

#[derive(Debug, Clone)]
struct User {
    id: u32,
    age: u8,
    gender: Gender,
    /// Trimmed; empty when not recorded.
    occupation: String,
}

#[derive(Debug, Clone)]
struct Movie {
    id: u32,
    /// Display title (article in front, year kept); `None` when the data has none.
    title: Option<String>,
    year: Option<u16>,
    /// Bit `i` set = genre `GENRES[i]`.
    genres: u32,
}

#[derive(Debug, Clone, Copy)]
struct Rating {
    /// Index into `MovieLens::movies`.
    movie: usize,
    stars: u8,
    timestamp: i64,
}

/// MovieLens 100K in memory: users and movies in id order, ratings grouped per user.
#[derive(Clone)]
pub struct MovieLens {
    users: Vec<User>,
    movies: Vec<Movie>,
    /// Grouped by user: user `i` owns `ratings[offsets[i]..offsets[i + 1]]`.
    ratings: Vec<Rating>,
    offsets: Vec<usize>,
}

impl std::fmt::Debug for MovieLens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MovieLens")
            .field("users", &self.users())
            .field("movies", &self.movies())
            .field("ratings", &self.ratings())
            .finish()
    }
}

impl MovieLens {
    /// Reads [`USERS_FILE`], [`MOVIES_FILE`] and [`RATINGS_FILE`] from `dir`.
    pub fn load(dir: &Path) -> Result<MovieLens> {
        if !dir.is_dir() {
            return Err(not_found(dir));
        }
        let files =
            Files { users: dir.join(USERS_FILE), movies: dir.join(MOVIES_FILE), ratings: dir.join(RATINGS_FILE) };
        let users = guarded(&files.users, read_users)?;
        let movies = guarded(&files.movies, read_movies)?;
        let ratings = guarded(&files.ratings, read_ratings)?;
        MovieLens::build(users, movies, ratings, &files)
    }

    /// [`MovieLens::load`] from `default_models_dir()/movielens-100k`, where
    /// `scripts/provision-models.sh` puts the files.
    pub fn load_default() -> Result<MovieLens> {
        MovieLens::load(&default_models_dir().join(DATA_DIR))
    }

    /// Number of users (= personas).
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Number of movies.
    pub fn movies(&self) -> usize {
        self.movies.len()
    }

    /// Number of ratings.
    pub fn ratings(&self) -> usize {
        self.ratings.len()
    }

    /// The MovieLens id of the user at `user_index` (users are in id order).
    pub fn user_id(&self, user_index: usize) -> Option<u32> {
        self.users.get(user_index).map(|u| u.id)
    }

    /// The ratings of the user at `user_index` as `(movie index, stars 1–5)`, in file order
    /// (empty for an index out of range). The graph miner reads MovieLens as users × movies.
    pub fn rated(&self, user_index: usize) -> impl Iterator<Item = (usize, u8)> + '_ {
        let range = match (self.offsets.get(user_index), self.offsets.get(user_index + 1)) {
            (Some(&a), Some(&b)) => a..b,
            _ => 0..0,
        };
        self.ratings[range].iter().map(|r| (r.movie, r.stars))
    }

    /// The MovieLens id of the movie at `movie_index` (movies are in id order).
    pub fn movie_id(&self, movie_index: usize) -> Option<u32> {
        self.movies.get(movie_index).map(|m| m.id)
    }

    /// The display title of the movie at `movie_index` ("The Harbour Lights (1988)"), if the
    /// data has one.
    pub fn movie_title(&self, movie_index: usize) -> Option<&str> {
        self.movies.get(movie_index).and_then(|m| m.title.as_deref())
    }

    /// The genres of the movie at `movie_index`, in [`GENRES`] order (`unknown` left out).
    pub fn movie_genres(&self, movie_index: usize) -> Vec<&'static str> {
        self.movies.get(movie_index).map(|m| genre_indices(m.genres).map(|g| GENRES[g]).collect()).unwrap_or_default()
    }

    /// One persona per user, in user-id order, each built when the iterator reaches it.
    pub fn personas(&self, options: &MovieLensOptions) -> impl Iterator<Item = Result<Persona>> + '_ {
        let options = options.clone();
        (0..self.users.len()).map(move |i| self.persona(i, &options))
    }

    /// The users as a [`PersonaSource`](super::PersonaSource) with these options.
    pub fn source(self: &Arc<Self>, options: MovieLensOptions) -> Result<MovieLensPersonas> {
        options.check()?;
        Ok(MovieLensPersonas { data: self.clone(), options })
    }

    /// The persona of the user at `user_index` (0-based, in user-id order).
    pub fn persona(&self, user_index: usize, options: &MovieLensOptions) -> Result<Persona> {
        options.check()?;
        let Some(user) = self.users.get(user_index) else {
            return Err(Error::InvalidInput(format!(
                "user index {user_index} is out of range (the bench has {} users)",
                self.users.len()
            )));
        };
        let rated = &self.ratings[self.offsets[user_index]..self.offsets[user_index + 1]];

        // Highest rating first, then most recent, then lowest movie id: a total order.
        let mut order: Vec<&Rating> = rated.iter().collect();
        order.sort_by(|a, b| {
            b.stars
                .cmp(&a.stars)
                .then(b.timestamp.cmp(&a.timestamp))
                .then(self.movies[a.movie].id.cmp(&self.movies[b.movie].id))
        });

        let stats = GenreStats::of(rated, &self.movies);
        let (liked, disliked) = stats.preferences();

        let mut persona = Persona::new(format!("ml100k-{}", user.id));
        persona.demographics.insert("age_band".into(), age_band(user.age).into());
        persona.demographics.insert("gender".into(), user.gender.word().into());
        if !user.occupation.is_empty() {
            persona.demographics.insert("profession".into(), user.occupation.clone());
        }
        persona.interests = stats.interests().into_iter().map(|g| GENRE_PHRASES[g].to_string()).collect();
        persona.preferences.liked = liked.iter().map(|&g| GENRE_PHRASES[g].to_string()).collect();
        persona.preferences.disliked = disliked.iter().map(|&g| GENRE_PHRASES[g].to_string()).collect();

        let favourites: Vec<&str> = order
            .iter()
            .filter(|r| r.stars >= 4)
            .filter_map(|r| self.movies[r.movie].title.as_deref())
            .take(SUMMARY_TITLES)
            .collect();
        persona.summary = summary(user, rated.len(), &persona.interests, &favourites, &persona.preferences.disliked);

        let min = options.min_rating.unwrap_or(1);
        persona.memory = order
            .iter()
            .filter(|r| r.stars >= min)
            .take(options.max_posts)
            .map(|r| post(&self.movies[r.movie], r.stars))
            .collect();

        persona.validate()?;
        Ok(persona)
    }

    /// Validates the raw tables and indexes them; `files` only locates errors.
    fn build(users: Vec<UserRow>, movies: Vec<MovieRow>, ratings: Vec<RatingRow>, files: &Files) -> Result<MovieLens> {
        let users_file = files.users.as_path();
        let movies_file = files.movies.as_path();
        let ratings_file = files.ratings.as_path();

        let mut user_list = Vec::with_capacity(users.len());
        for (i, row) in users.into_iter().enumerate() {
            let id = positive_id(row.user_id).ok_or_else(|| {
                bad(users_file, "user_id", format!("row {}: user_id {} is not a positive id", i + 1, row.user_id))
            })?;
            let age = u8::try_from(row.age).ok().filter(|a| (1..=120).contains(a)).ok_or_else(|| {
                bad(users_file, "age", format!("row {} (user {id}): age {} is outside 1-120", i + 1, row.age))
            })?;
            let gender = match row.gender.trim() {
                "F" | "f" => Gender::Female,
                "M" | "m" => Gender::Male,
                other => {
                    return Err(bad(
                        users_file,
                        "gender",
                        format!("row {} (user {id}): gender `{other}` is neither `F` nor `M`", i + 1),
                    ))
                }
            };
            user_list.push((i, User { id, age, gender, occupation: row.occupation.trim().to_string() }));
        }
        user_list.sort_by_key(|(_, u)| u.id);
        if let Some(w) = user_list.windows(2).find(|w| w[0].1.id == w[1].1.id) {
            let msg = format!("user_id {} appears twice (rows {} and {})", w[0].1.id, w[0].0 + 1, w[1].0 + 1);
            return Err(bad(users_file, "user_id", msg));
        }
        let users: Vec<User> = user_list.into_iter().map(|(_, u)| u).collect();
        let user_index: HashMap<u32, usize> = users.iter().enumerate().map(|(i, u)| (u.id, i)).collect();

        let mut movie_list = Vec::with_capacity(movies.len());
        for (i, row) in movies.into_iter().enumerate() {
            let id = positive_id(row.movie_id).ok_or_else(|| {
                bad(movies_file, "movie_id", format!("row {}: movie_id {} is not a positive id", i + 1, row.movie_id))
            })?;
            let (title, title_year) = display_title(&row.title);
            let year = title_year.or_else(|| row.release_date.as_deref().and_then(release_year));
            movie_list.push((i, Movie { id, title, year, genres: row.genres }));
        }
        movie_list.sort_by_key(|(_, m)| m.id);
        if let Some(w) = movie_list.windows(2).find(|w| w[0].1.id == w[1].1.id) {
            let msg = format!("movie_id {} appears twice (rows {} and {})", w[0].1.id, w[0].0 + 1, w[1].0 + 1);
            return Err(bad(movies_file, "movie_id", msg));
        }
        let movies: Vec<Movie> = movie_list.into_iter().map(|(_, m)| m).collect();
        let movie_index: HashMap<u32, usize> = movies.iter().enumerate().map(|(i, m)| (m.id, i)).collect();

        // (user index, row, rating), sorted into per-user groups.
        let mut grouped = Vec::with_capacity(ratings.len());
        for (i, row) in ratings.into_iter().enumerate() {
            let row_no = i + 1;
            let user = positive_id(row.user_id).and_then(|id| user_index.get(&id).copied()).ok_or_else(|| {
                let msg = format!("row {row_no}: user_id {} is not in {USERS_FILE}", row.user_id);
                bad(ratings_file, "user_id", msg)
            })?;
            let movie = positive_id(row.movie_id).and_then(|id| movie_index.get(&id).copied()).ok_or_else(|| {
                let msg = format!("row {row_no}: movie_id {} is not in {MOVIES_FILE}", row.movie_id);
                bad(ratings_file, "movie_id", msg)
            })?;
            let stars = u8::try_from(row.rating).ok().filter(|r| (1..=5).contains(r)).ok_or_else(|| {
                bad(ratings_file, "rating", format!("row {row_no}: rating {} is outside 1-5", row.rating))
            })?;
            grouped.push((user, i, Rating { movie, stars, timestamp: row.timestamp }));
        }
        grouped.sort_by_key(|(user, _, r)| (*user, r.movie));
        if let Some(w) = grouped.windows(2).find(|w| w[0].0 == w[1].0 && w[0].2.movie == w[1].2.movie) {
            let msg = format!(
                "user {} rates movie {} twice (rows {} and {})",
                users[w[0].0].id,
                movies[w[0].2.movie].id,
                w[0].1 + 1,
                w[1].1 + 1
            );
            return Err(bad(ratings_file, "movie_id", msg));
        }
        let mut offsets = vec![0; users.len() + 1];
        for (user, _, _) in &grouped {
            offsets[user + 1] += 1;
        }
        for i in 0..users.len() {
            offsets[i + 1] += offsets[i];
        }
        let ratings = grouped.into_iter().map(|(_, _, r)| r).collect();
        Ok(MovieLens { users, movies, ratings, offsets })
    }
}

impl Gender {
    fn word(self) -> &'static str {
        match self {
            Gender::Female => "female",
            Gender::Male => "male",
        }
    }

    fn pronoun(self) -> &'static str {
        match self {
            Gender::Female => "She",
            Gender::Male => "He",
        }
    }
}

/// The age band of `age`, in the bands the example personas use.
fn age_band(age: u8) -> &'static str {
    match age {
        0..=17 => "under 18",
        18..=24 => "18-24",
        25..=34 => "25-34",
        35..=44 => "35-44",
        45..=54 => "45-54",
        55..=64 => "55-64",
        65..=74 => "65-74",
        _ => "75+",
    }
}

/// "A 25-34-year-old male programmer", "An 18-24-year-old female with no occupation".
fn describe_user(user: &User) -> String {
    let age = match age_band(user.age) {
        "under 18" => "An under-18".to_string(),
        "75+" => "A 75-or-older".to_string(),
        band if band.starts_with("18") => format!("An {band}-year-old"),
        band => format!("A {band}-year-old"),
    };
    let gender = user.gender.word();
    match user.occupation.as_str() {
        "" => format!("{age} {gender}"),
        "none" => format!("{age} {gender} with no occupation"),
        "other" => format!("{age} {gender} with an occupation listed as \"other\""),
        "entertainment" => format!("{age} {gender} entertainment worker"),
        "healthcare" => format!("{age} {gender} healthcare worker"),
        "marketing" => format!("{age} {gender} marketing professional"),
        "retired" => format!("{age} retired {gender}"),
        "salesman" => format!("{age} {gender} salesperson"),
        occupation => format!("{age} {gender} {occupation}"),
    }
}

fn summary(user: &User, rated: usize, interests: &[String], favourites: &[&str], disliked: &[String]) -> String {
    let mut s = describe_user(user);
    let films = if rated == 1 { "film" } else { "films" };
    if rated == 0 {
        s.push_str(" who has not rated any films.");
    } else if interests.is_empty() {
        s.push_str(&format!(" who has rated {rated} {films}, none above 3 out of 5."));
    } else {
        let top: Vec<&str> = interests.iter().take(SUMMARY_GENRES).map(String::as_str).collect();
        s.push_str(&format!(" who has rated {rated} {films}, most often giving high ratings to {}", join_and(&top)));
        if !favourites.is_empty() {
            s.push_str(&format!("; favourites include {}", join_and(favourites)));
        }
        s.push('.');
    }
    if !disliked.is_empty() {
        let low: Vec<&str> = disliked.iter().map(String::as_str).collect();
        s.push_str(&format!(" {} rates {} lowest.", user.gender.pronoun(), join_and(&low)));
    }
    s
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// One memory post: caption with title, rating and genres; genre / era / rating elements.
fn post(movie: &Movie, stars: u8) -> Post {
    let genres: Vec<&str> = genre_indices(movie.genres).map(|g| GENRES[g]).collect();
    let title = movie.title.as_deref().unwrap_or("A film with no recorded title");
    let caption = if genres.is_empty() {
        format!("{title}, rated {stars} out of 5; genre not recorded.")
    } else {
        format!("{title}, rated {stars} out of 5: {}.", genres.join(", "))
    };
    let mut post = Post::new(caption);
    post.id = Some(format!("m{}", movie.id));
    if !genres.is_empty() {
        post.elements.insert("genre".into(), genres.iter().map(|g| g.to_string()).collect());
    }
    if let Some(year) = movie.year {
        post.elements.insert("era".into(), vec![format!("{}s", year / 10 * 10)]);
    }
    post
}

/// The shown genres of a mask, in [`GENRES`] order (`unknown` left out).
fn genre_indices(mask: u32) -> impl Iterator<Item = usize> {
    (0..GENRES.len()).filter(move |&g| mask & !UNKNOWN_GENRE & (1 << g) != 0)
}

/// Per-genre rating counts of one user.
struct GenreStats {
    /// Ratings of movies in the genre, their star sum, and how many were 4 or 5.
    count: [i64; 19],
    sum: [i64; 19],
    high: [i64; 19],
    /// Over every rating of the user.
    total_count: i64,
    total_sum: i64,
}

impl GenreStats {
    fn of(rated: &[Rating], movies: &[Movie]) -> GenreStats {
        let mut s = GenreStats { count: [0; 19], sum: [0; 19], high: [0; 19], total_count: 0, total_sum: 0 };
        for r in rated {
            s.total_count += 1;
            s.total_sum += i64::from(r.stars);
            for g in genre_indices(movies[r.movie].genres) {
                s.count[g] += 1;
                s.sum[g] += i64::from(r.stars);
                s.high[g] += i64::from(r.stars >= 4);
            }
        }
        s
    }

    /// Genre `a`'s average rating against genre `b`'s, exactly (no floats).
    fn cmp_mean(&self, a: usize, b: usize) -> Ordering {
        (self.sum[a] * self.count[b]).cmp(&(self.sum[b] * self.count[a]))
    }

    /// `4 × (genre mean − user mean)` scaled by both counts: positive when the genre is rated
    /// above the user's average; at least `count × total` when a quarter star above.
    fn quarter_stars_above_mean(&self, g: usize) -> (i64, i64) {
        let diff = 4 * (self.sum[g] * self.total_count - self.total_sum * self.count[g]);
        (diff, self.count[g] * self.total_count)
    }

    /// Most frequent genres among ratings of 4 and 5 (then higher mean, then file order).
    fn interests(&self) -> Vec<usize> {
        let mut genres: Vec<usize> = (1..GENRES.len()).filter(|&g| self.high[g] > 0).collect();
        genres.sort_by(|&a, &b| self.high[b].cmp(&self.high[a]).then(self.cmp_mean(b, a)).then(a.cmp(&b)));
        genres.truncate(MAX_INTERESTS);
        genres
    }

    /// Genres rated at least a quarter star above / below the user's own average, each with
    /// at least [`MIN_GENRE_RATINGS`] ratings; strongest first (then more ratings, then file order).
    fn preferences(&self) -> (Vec<usize>, Vec<usize>) {
        let evidenced = || (1..GENRES.len()).filter(|&g| self.count[g] >= MIN_GENRE_RATINGS);
        let mut liked: Vec<usize> = evidenced()
            .filter(|&g| {
                let (diff, scale) = self.quarter_stars_above_mean(g);
                diff >= scale
            })
            .collect();
        liked.sort_by(|&a, &b| self.cmp_mean(b, a).then(self.count[b].cmp(&self.count[a])).then(a.cmp(&b)));
        liked.truncate(MAX_PREFERENCES);
        let mut disliked: Vec<usize> = evidenced()
            .filter(|&g| {
                let (diff, scale) = self.quarter_stars_above_mean(g);
                -diff >= scale
            })
            .collect();
        disliked.sort_by(|&a, &b| self.cmp_mean(a, b).then(self.count[b].cmp(&self.count[a])).then(a.cmp(&b)));
        disliked.truncate(MAX_PREFERENCES);
        (liked, disliked)
    }
}

/// Articles MovieLens moves behind the title (`"Harbour Lights, The"`).
const ARTICLES: &[&str] = &["The", "A", "An", "La", "Le", "Les", "L'", "Il", "Das", "Der", "Die", "El", "Los", "Las"];

/// The title as people write it, and the year in it: `"Harbour Lights, The (1988)"` →
/// (`"The Harbour Lights (1988)"`, 1988). `None` for an empty or `unknown` title.
fn display_title(raw: &str) -> (Option<String>, Option<u16>) {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("unknown") {
        return (None, None);
    }
    // Peel trailing " (…)" groups: the year, "(V)", an alternative title.
    let mut rest = raw;
    let mut groups = Vec::new();
    while let Some(inner) = rest.strip_suffix(')') {
        let Some(open) = inner.rfind('(') else { break };
        let head = inner[..open].trim_end();
        if head.is_empty() || inner[open + 1..].contains(')') {
            break;
        }
        groups.push(&inner[open + 1..]);
        rest = head;
    }
    groups.reverse();
    let year = groups.iter().rev().find_map(|g| parse_year(g));
    let mut out = front_article(rest);
    for g in groups {
        out.push_str(" (");
        out.push_str(&if parse_year(g).is_some() { g.to_string() } else { front_article(g) });
        out.push(')');
    }
    (Some(out), year)
}

/// `"Harbour Lights, The"` → `"The Harbour Lights"`; `"Atelier, L'"` → `"L'Atelier"`.
fn front_article(title: &str) -> String {
    if let Some((head, article)) = title.rsplit_once(", ") {
        if ARTICLES.contains(&article) && !head.trim().is_empty() {
            let sep = if article.ends_with('\'') { "" } else { " " };
            return format!("{article}{sep}{}", head.trim());
        }
    }
    title.to_string()
}

fn parse_year(s: &str) -> Option<u16> {
    if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok().filter(|y| (1800..=2100).contains(y))
    } else {
        None
    }
}

/// The year of a release date such as `01-Jan-1995`.
fn release_year(date: &str) -> Option<u16> {
    date.trim().rsplit('-').next().and_then(parse_year)
}

fn positive_id(id: i64) -> Option<u32> {
    u32::try_from(id).ok().filter(|&id| id > 0)
}

// ---------------------------------------------------------------------------------------
// Parquet

/// Where each table came from (for error locations).
struct Files {
    users: PathBuf,
    movies: PathBuf,
    ratings: PathBuf,
}

#[derive(Debug, Clone)]
struct UserRow {
    user_id: i64,
    age: i64,
    gender: String,
    occupation: String,
}

#[derive(Debug, Clone)]
struct MovieRow {
    movie_id: i64,
    title: String,
    release_date: Option<String>,
    /// Bit `i` set = flag `GENRES[i]` is 1.
    genres: u32,
}

#[derive(Debug, Clone)]
struct RatingRow {
    user_id: i64,
    movie_id: i64,
    rating: i64,
    timestamp: i64,
}

fn not_found(path: &Path) -> Error {
    Error::ModelNotFound { model: MODEL.into(), path: path.to_path_buf(), hint: PROVISION_HINT.into() }
}

fn unusable(path: &Path, message: impl Into<String>) -> Error {
    Error::ModelInvalid {
        model: MODEL.into(),
        path: path.to_path_buf(),
        message: message.into(),
        hint: format!("re-provision it ({PROVISION_HINT})"),
    }
}

fn bad(path: &Path, column: &str, message: impl Into<String>) -> Error {
    Error::schema(
        Location { file: Some(path.to_path_buf()), field: Some(column.into()), ..Location::default() },
        message,
    )
}

/// Runs a table reader, turning a panic inside the parquet decoder (a third-party parser
/// fed a damaged file) into [`Error::ModelInvalid`] for that file.
fn guarded<T>(path: &Path, read: fn(&Path) -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(|| read(path)) {
        Ok(result) => result,
        Err(panic) => {
            let what = zipp_core::error::panic_message(&*panic);
            Err(unusable(path, format!("the parquet decoder failed: {what}")))
        }
    }
}

fn read_users(path: &Path) -> Result<Vec<UserRow>> {
    let t = Table::open(path)?;
    let user_id = t.required(t.ints("user_id")?, "user_id")?;
    let age = t.required(t.ints("age")?, "age")?;
    let gender = t.required(t.strings("gender")?, "gender")?;
    let occupation = t.required(t.strings("occupation")?, "occupation")?;
    Ok((0..t.rows)
        .map(|i| UserRow {
            user_id: user_id[i],
            age: age[i],
            gender: gender[i].clone(),
            occupation: occupation[i].clone(),
        })
        .collect())
}

fn read_movies(path: &Path) -> Result<Vec<MovieRow>> {
    let t = Table::open(path)?;
    let movie_id = t.required(t.ints("movie_id")?, "movie_id")?;
    let title = t.required(t.strings("movie_title")?, "movie_title")?;
    let release_date = t.strings("release_date")?;
    let mut genres = vec![0u32; t.rows];
    for (g, name) in GENRES.iter().enumerate() {
        let flags = t.required(t.ints(name)?, name)?;
        for (row, flag) in flags.into_iter().enumerate() {
            match flag {
                0 => {}
                1 => genres[row] |= 1 << g,
                v => return Err(bad(path, name, format!("row {}: genre flag {v} is neither 0 nor 1", row + 1))),
            }
        }
    }
    let mut release_date = release_date.into_iter();
    Ok((0..t.rows)
        .map(|i| MovieRow {
            movie_id: movie_id[i],
            title: title[i].clone(),
            release_date: release_date.next().flatten(),
            genres: genres[i],
        })
        .collect())
}

fn read_ratings(path: &Path) -> Result<Vec<RatingRow>> {
    let t = Table::open(path)?;
    let user_id = t.required(t.ints("user_id")?, "user_id")?;
    let movie_id = t.required(t.ints("movie_id")?, "movie_id")?;
    let rating = t.required(t.ints("rating")?, "rating")?;
    let timestamp = t.required(t.ints("timestamp")?, "timestamp")?;
    Ok((0..t.rows)
        .map(|i| RatingRow { user_id: user_id[i], movie_id: movie_id[i], rating: rating[i], timestamp: timestamp[i] })
        .collect())
}

/// One open parquet file, read column by column.
struct Table {
    path: PathBuf,
    reader: SerializedFileReader<File>,
    rows: usize,
}

impl Table {
    fn open(path: &Path) -> Result<Table> {
        let file = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_found(path),
            _ => Error::io(path, e),
        })?;
        let reader =
            SerializedFileReader::new(file).map_err(|e| unusable(path, format!("not a readable parquet file: {e}")))?;
        let rows = usize::try_from(reader.metadata().file_metadata().num_rows())
            .map_err(|_| unusable(path, "the footer gives a negative row count"))?;
        Ok(Table { path: path.to_path_buf(), reader, rows })
    }

    fn column(&self, name: &str) -> Result<(usize, ColumnDescPtr)> {
        let schema = self.reader.metadata().file_metadata().schema_descr();
        let found = schema.columns().iter().position(|c| c.path().parts() == [name]);
        let Some(index) = found else {
            let names: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
            return Err(bad(&self.path, name, format!("missing column `{name}` (the file has: {})", names.join(", "))));
        };
        let desc = schema.column(index);
        if desc.max_rep_level() > 0 {
            return Err(bad(&self.path, name, format!("column `{name}` is repeated; expected one value per row")));
        }
        Ok((index, desc))
    }

    /// An integer column (INT32 or INT64); `None` where null.
    fn ints(&self, name: &str) -> Result<Vec<Option<i64>>> {
        let (index, desc) = self.column(name)?;
        let physical = desc.physical_type();
        if !matches!(physical, PhysicalType::INT32 | PhysicalType::INT64) {
            return Err(bad(&self.path, name, format!("column `{name}` holds {physical:?}, expected integers")));
        }
        self.read(index, &desc, |reader, rows, max_def| match reader {
            ColumnReader::Int64ColumnReader(mut r) => read_chunk::<Int64Type>(&mut r, rows, max_def),
            ColumnReader::Int32ColumnReader(mut r) => {
                let values = read_chunk::<Int32Type>(&mut r, rows, max_def)?;
                Ok(values.into_iter().map(|v| v.map(i64::from)).collect())
            }
            _ => Err(format!("column `{name}` changed type between row groups")),
        })
    }

    /// A UTF-8 string column; `None` where null.
    fn strings(&self, name: &str) -> Result<Vec<Option<String>>> {
        let (index, desc) = self.column(name)?;
        let physical = desc.physical_type();
        if physical != PhysicalType::BYTE_ARRAY {
            return Err(bad(&self.path, name, format!("column `{name}` holds {physical:?}, expected strings")));
        }
        let bytes = self.read(index, &desc, |reader, rows, max_def| match reader {
            ColumnReader::ByteArrayColumnReader(mut r) => read_chunk::<ByteArrayType>(&mut r, rows, max_def),
            _ => Err(format!("column `{name}` changed type between row groups")),
        })?;
        bytes
            .into_iter()
            .enumerate()
            .map(|(row, v)| match v {
                None => Ok(None),
                Some(b) => match std::str::from_utf8(b.data()) {
                    Ok(s) => Ok(Some(s.to_string())),
                    Err(_) => Err(bad(&self.path, name, format!("row {}: value is not UTF-8 text", row + 1))),
                },
            })
            .collect()
    }

    /// Every row of column `index`, row group by row group.
    fn read<T>(
        &self,
        index: usize,
        desc: &ColumnDescPtr,
        mut chunk: impl FnMut(ColumnReader, usize, i16) -> std::result::Result<Vec<Option<T>>, String>,
    ) -> Result<Vec<Option<T>>> {
        let name = desc.path().string();
        let fail = |e: String| unusable(&self.path, format!("column `{name}`: {e}"));
        // Row counts come from the footer: never trusted for an allocation before the rows
        // are actually read (a damaged count could ask for terabytes, and that aborts).
        let mut out = Vec::with_capacity(self.rows.min(READ_BATCH));
        for g in 0..self.reader.num_row_groups() {
            let group = self.reader.get_row_group(g).map_err(|e| fail(e.to_string()))?;
            let rows = usize::try_from(group.metadata().num_rows())
                .map_err(|_| fail(format!("row group {g} has a negative row count")))?;
            let reader = group.get_column_reader(index).map_err(|e| fail(e.to_string()))?;
            out.extend(chunk(reader, rows, desc.max_def_level()).map_err(fail)?);
        }
        if out.len() != self.rows {
            return Err(fail(format!("holds {} values, the footer says {} rows", out.len(), self.rows)));
        }
        Ok(out)
    }

    /// Unwraps a column that must not hold nulls.
    fn required<T>(&self, column: Vec<Option<T>>, name: &str) -> Result<Vec<T>> {
        column
            .into_iter()
            .enumerate()
            .map(|(row, v)| v.ok_or_else(|| bad(&self.path, name, format!("row {}: value is missing (null)", row + 1))))
            .collect()
    }
}

/// Rows decoded per `read_records` call.
const READ_BATCH: usize = 8192;

/// Reads the `rows` values of one column chunk, nulls as `None`.
fn read_chunk<T: DataType>(
    reader: &mut ColumnReaderImpl<T>,
    rows: usize,
    max_def: i16,
) -> std::result::Result<Vec<Option<T::T>>, String> {
    let mut out = Vec::with_capacity(rows.min(READ_BATCH));
    let mut defs = Vec::new();
    let mut values = Vec::new();
    while out.len() < rows {
        defs.clear();
        values.clear();
        let want = (rows - out.len()).min(READ_BATCH);
        let (records, read, _) =
            reader.read_records(want, Some(&mut defs), None, &mut values).map_err(|e| e.to_string())?;
        if records == 0 {
            return Err(format!("ends after {} of {rows} rows", out.len()));
        }
        if max_def == 0 {
            if read != records || values.len() != records {
                return Err(format!("{read} values for {records} rows"));
            }
            out.extend(values.drain(..).map(Some));
        } else {
            if defs.len() != records || values.len() != read || defs.iter().filter(|&&d| d == max_def).count() != read {
                return Err(format!("{read} values do not match the definition levels of {records} rows"));
            }
            let mut values = values.drain(..);
            out.extend(defs.iter().map(|&d| if d == max_def { values.next() } else { None }));
        }
    }
    if out.len() != rows {
        return Err(format!("holds {} rows where {rows} were expected", out.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Logic tests run on small invented tables (never MovieLens content: its licence forbids
    //! redistribution); the parquet tests write invented tables with the crate's own writer,
    //! and only `real_files_*` read the provisioned files.

    use std::sync::Arc;

    use parquet::basic::{LogicalType, Repetition};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;

    use super::*;

    fn files() -> Files {
        Files { users: "users.parquet".into(), movies: "items.parquet".into(), ratings: "data.parquet".into() }
    }

    fn user(id: i64, age: i64, gender: &str, occupation: &str) -> UserRow {
        UserRow { user_id: id, age, gender: gender.into(), occupation: occupation.into() }
    }

    fn mask(genres: &[&str]) -> u32 {
        genres.iter().map(|g| 1 << GENRES.iter().position(|n| n == g).expect("a genre")).sum()
    }

    fn movie(id: i64, title: &str, date: Option<&str>, genres: &[&str]) -> MovieRow {
        MovieRow { movie_id: id, title: title.into(), release_date: date.map(String::from), genres: mask(genres) }
    }

    fn rating(user_id: i64, movie_id: i64, rating: i64, timestamp: i64) -> RatingRow {
        RatingRow { user_id, movie_id, rating, timestamp }
    }

    /// Invented movies, one per genre mix the tests need.
    fn movies() -> Vec<MovieRow> {
        vec![
            movie(1, "Comet Riders (1977)", Some("01-Jan-1977"), &["Action", "Adventure", "Sci-Fi"]),
            movie(2, "Harbour Lights, The (1988)", Some("01-Jan-1988"), &["Crime", "Thriller"]),
            movie(3, "Maison bleue, La (Blue House, The) (1961)", Some("01-Jan-1961"), &["Drama"]),
            movie(4, "unknown", None, &["unknown"]),
            movie(5, "Quiet Morning (1971)", Some("4-Feb-1971"), &["unknown"]),
            movie(6, "Cellar Door (1996)", Some("01-Jan-1996"), &["Horror", "Thriller"]),
            movie(7, "Night Creek (1978)", Some("01-Jan-1978"), &["Horror"]),
            movie(8, "Ciao, Amico! (1990)", Some("01-Jan-1990"), &["Comedy"]),
            movie(9, "Snow Ledger (1996)", Some("01-Jan-1996"), &["Crime", "Drama", "Thriller"]),
            movie(10, "Pressure Point (1995)", Some("01-Jan-1995"), &["Action", "Crime", "Thriller"]),
            movie(11, "Hollow Star (1979)", Some("01-Jan-1979"), &["Horror", "Sci-Fi"]),
            movie(12, "Nameless Reel", Some("12-Mar-1964"), &["Comedy", "Film-Noir"]),
        ]
    }

    fn users() -> Vec<UserRow> {
        vec![
            user(1, 29, "M", "programmer"),
            user(2, 17, "F", "student"),
            user(3, 70, "F", "none"),
            user(4, 45, "M", "other"),
        ]
    }

    /// User 1 rates with ties on stars and timestamps; user 4 rates nothing.
    fn ratings() -> Vec<RatingRow> {
        vec![
            rating(1, 3, 5, 100),
            rating(1, 1, 5, 200),
            rating(1, 9, 5, 200),
            rating(1, 2, 4, 300),
            rating(1, 8, 1, 400),
            rating(1, 6, 2, 50),
            rating(1, 7, 1, 60),
            rating(1, 10, 2, 70),
            rating(2, 4, 3, 10),
            rating(2, 5, 4, 20),
            rating(2, 12, 2, 30),
            rating(3, 8, 3, 10),
        ]
    }

    fn bench() -> MovieLens {
        MovieLens::build(users(), movies(), ratings(), &files()).expect("valid tables")
    }

    fn ids(p: &Persona) -> Vec<&str> {
        p.memory.iter().map(|m| m.id.as_deref().unwrap()).collect()
    }

    #[test]
    fn counts_and_user_order() {
        let b = bench();
        assert_eq!((b.users(), b.movies(), b.ratings()), (4, 12, 12));
        assert_eq!((0..4).map(|i| b.user_id(i).unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(b.user_id(4), None);
        assert_eq!(format!("{b:?}"), "MovieLens { users: 4, movies: 12, ratings: 12 }");
    }

    #[test]
    fn posts_are_highest_rated_then_most_recent_then_lowest_id() {
        let b = bench();
        let all = MovieLensOptions { max_posts: 100, min_rating: None };
        let p = b.persona(0, &all).unwrap();
        assert_eq!(ids(&p), ["m1", "m9", "m3", "m2", "m10", "m6", "m8", "m7"]);
        let p = b.persona(0, &MovieLensOptions { max_posts: 3, min_rating: None }).unwrap();
        assert_eq!(ids(&p), ["m1", "m9", "m3"]);
        let p = b.persona(0, &MovieLensOptions { max_posts: 30, min_rating: Some(4) }).unwrap();
        assert_eq!(ids(&p), ["m1", "m9", "m3", "m2"]);
        let p = b.persona(0, &MovieLensOptions { max_posts: 0, min_rating: None }).unwrap();
        assert!(p.memory.is_empty());
        // The options filter posts only: interests and the summary still see every rating.
        assert_eq!(p.interests, b.persona(0, &all).unwrap().interests);
        assert_eq!(p.summary, b.persona(0, &all).unwrap().summary);
    }

    #[test]
    fn captions_and_elements() {
        let b = bench();
        let p = b.persona(0, &MovieLensOptions::default()).unwrap();
        let m2 = p.memory.iter().find(|m| m.id.as_deref() == Some("m2")).unwrap();
        assert_eq!(m2.caption, "The Harbour Lights (1988), rated 4 out of 5: Crime, Thriller.");
        assert_eq!(m2.elements["genre"], ["Crime", "Thriller"]);
        assert_eq!(m2.elements["era"], ["1980s"]);
        assert!(!m2.elements.contains_key("rating"), "the rating is in the caption only");
        let m3 = &p.memory[2];
        assert_eq!(m3.caption, "La Maison bleue (The Blue House) (1961), rated 5 out of 5: Drama.");

        let p = b.persona(1, &MovieLensOptions::default()).unwrap();
        assert_eq!(ids(&p), ["m5", "m4", "m12"]);
        // The `unknown` flag is no genre; a missing title and year are said, not invented.
        assert_eq!(p.memory[0].caption, "Quiet Morning (1971), rated 4 out of 5; genre not recorded.");
        assert_eq!(p.memory[0].elements.keys().collect::<Vec<_>>(), ["era"]);
        assert_eq!(p.memory[1].caption, "A film with no recorded title, rated 3 out of 5; genre not recorded.");
        assert!(p.memory[1].elements.is_empty());
        // No year in the title: the era comes from the release date.
        assert_eq!(p.memory[2].caption, "Nameless Reel, rated 2 out of 5: Comedy, Film-Noir.");
        assert_eq!(p.memory[2].elements["era"], ["1960s"]);
    }

    #[test]
    fn titles_read_naturally() {
        let t = |raw: &str| display_title(raw);
        assert_eq!(t("Harbour Lights, The (1988)"), (Some("The Harbour Lights (1988)".into()), Some(1988)));
        assert_eq!(t("Man Called Stone, A (1970)").0.unwrap(), "A Man Called Stone (1970)");
        assert_eq!(t("Atelier, L' (1996)").0.unwrap(), "L'Atelier (1996)");
        assert_eq!(
            t("Maison bleue, La (Blue House, The) (1961)").0.unwrap(),
            "La Maison bleue (The Blue House) (1961)"
        );
        assert_eq!(
            t("Night Train II: The Return (1994) (V)"),
            (Some("Night Train II: The Return (1994) (V)".into()), Some(1994))
        );
        assert_eq!(t("Ciao, Amico! (1990)").0.unwrap(), "Ciao, Amico! (1990)");
        assert_eq!(t("Été à Añorbe, Un  (1993) ").0.unwrap(), "Été à Añorbe, Un (1993)");
        assert_eq!(t("Vents \"du\" nord (Nord) (1951)").0.unwrap(), "Vents \"du\" nord (Nord) (1951)");
        assert_eq!(t("(Untitled) (1990)"), (Some("(Untitled) (1990)".into()), Some(1990)));
        assert_eq!(t("Loose Ends"), (Some("Loose Ends".into()), None));
        assert_eq!(t("unknown"), (None, None));
        assert_eq!(t("  "), (None, None));
        assert_eq!(release_year("4-Feb-1971"), Some(1971));
        assert_eq!(release_year("soon"), None);
    }

    #[test]
    fn age_bands() {
        let cases = [
            (7, "under 18"),
            (17, "under 18"),
            (18, "18-24"),
            (24, "18-24"),
            (25, "25-34"),
            (34, "25-34"),
            (35, "35-44"),
            (54, "45-54"),
            (55, "55-64"),
            (65, "65-74"),
            (74, "65-74"),
            (75, "75+"),
            (120, "75+"),
        ];
        for (age, band) in cases {
            assert_eq!(age_band(age), band, "age {age}");
        }
    }

    #[test]
    fn demographics_and_summary() {
        let b = bench();
        let o = MovieLensOptions::default();
        let p = b.persona(0, &o).unwrap();
        assert_eq!(p.id, "ml100k-1");
        let d: Vec<(&str, &str)> = p.demographics.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(d, [("age_band", "25-34"), ("gender", "male"), ("profession", "programmer")]);
        assert_eq!(
            p.summary,
            "A 25-34-year-old male programmer who has rated 8 films, most often giving high ratings to dramas, \
             crime films and thrillers; favourites include Comet Riders (1977), Snow Ledger (1996) and \
             La Maison bleue (The Blue House) (1961)."
        );

        let p = b.persona(1, &o).unwrap();
        assert_eq!(p.demographics["age_band"], "under 18");
        assert_eq!(p.demographics["gender"], "female");
        // Only unknown-genre films are rated 4+: no interests, and no favourite without a title.
        assert!(p.interests.is_empty());
        assert!(
            p.summary.starts_with("An under-18 female student who has rated 3 films, none above 3"),
            "{}",
            p.summary
        );

        let p = b.persona(2, &o).unwrap();
        assert_eq!(p.demographics["profession"], "none");
        assert!(p.summary.starts_with("A 65-74-year-old female with no occupation who has rated 1 film,"));

        let p = b.persona(3, &o).unwrap();
        assert_eq!(p.id, "ml100k-4");
        assert_eq!(p.demographics["profession"], "other");
        assert_eq!(
            p.summary,
            "A 45-54-year-old male with an occupation listed as \"other\" who has not rated any films."
        );
        assert!(p.memory.is_empty() && p.interests.is_empty() && p.preferences.is_empty());
    }

    #[test]
    fn interests_are_most_frequent_high_rated_genres() {
        let p = bench().persona(0, &MovieLensOptions::default()).unwrap();
        // 4+ ratings: Drama, Crime, Thriller twice each (tie broken by mean: 5, 11/3, 13/4),
        // then Action, Adventure, Sci-Fi once (means 7/2, 5, 5: Adventure before Sci-Fi by
        // file order). The unknown genre never counts.
        assert_eq!(p.interests, ["dramas", "crime films", "thrillers", "adventure films", "science fiction films"]);
    }

    /// One user who rates five comedy/crime/thriller films 4 and `horror` horror films 1.
    fn one_user(horror: usize) -> Persona {
        let mut ratings = vec![rating(1, 8, 4, 1), rating(1, 12, 4, 2), rating(1, 2, 4, 3), rating(1, 9, 4, 4)];
        ratings.push(rating(1, 10, 4, 5));
        for (i, m) in [7, 11, 6].into_iter().take(horror).enumerate() {
            ratings.push(rating(1, m, 1, 10 + i as i64));
        }
        let b = MovieLens::build(vec![user(1, 30, "F", "writer")], movies(), ratings, &files()).unwrap();
        b.persona(0, &MovieLensOptions::default()).unwrap()
    }

    #[test]
    fn disliked_needs_three_ratings() {
        // Two horror films at 1 star: far below her mean, but not evidenced enough.
        assert!(one_user(2).preferences.disliked.is_empty());
        let p = one_user(3);
        // Mean 23/8. Horror (1, 1, 1): disliked; Sci-Fi (1) has one rating only.
        assert_eq!(p.preferences.disliked, ["horror films"]);
        assert!(p.summary.ends_with(" She rates horror films lowest."), "{}", p.summary);
        // Crime (4, 4, 4) and Thriller (4, 4, 4, 1) = 13/4 are over a quarter star above it;
        // Comedy (4, 4) has two ratings only.
        assert_eq!(p.preferences.liked, ["crime films", "thrillers"]);
    }

    #[test]
    fn liked_and_disliked_are_relative_and_evidenced() {
        let p = bench().persona(0, &MovieLensOptions::default()).unwrap();
        // Mean 25/8. Drama (5, 5): only two ratings. Crime (5, 4, 2) = 11/3 is > 1/4 above;
        // Action (5, 2) two ratings; Thriller (5, 4, 2, 2) = 13/4 is within a quarter star.
        assert_eq!(p.preferences.liked, ["crime films"]);
        assert!(p.preferences.disliked.is_empty());
    }

    #[test]
    fn personas_validate_round_trip_and_are_deterministic() {
        let b = bench();
        let o = MovieLensOptions::default();
        let all: Vec<Persona> = b.personas(&o).collect::<Result<_>>().unwrap();
        assert_eq!(all.len(), 4);
        for p in &all {
            p.validate().unwrap();
            assert_eq!(&Persona::from_json_str(&p.to_json_string(false).unwrap()).unwrap(), p);
        }
        // Same personas from the same data in another row order.
        let mut u = users();
        let mut m = movies();
        let mut r = ratings();
        u.reverse();
        m.reverse();
        r.reverse();
        let shuffled = MovieLens::build(u, m, r, &files()).unwrap();
        let again: Vec<Persona> = shuffled.personas(&o).collect::<Result<_>>().unwrap();
        assert_eq!(again, all);
        assert_eq!(b.persona(2, &o).unwrap(), all[2]);
    }

    #[test]
    fn bad_arguments_are_invalid_input() {
        let b = bench();
        let e = b.persona(4, &MovieLensOptions::default()).unwrap_err();
        assert_eq!(e.kind(), "invalid_input");
        assert!(e.to_string().contains("4 users"), "{e}");
        for r in [0, 6] {
            let e = b.persona(0, &MovieLensOptions { max_posts: 30, min_rating: Some(r) }).unwrap_err();
            assert_eq!(e.kind(), "invalid_input", "{e}");
        }
        let mut it = b.personas(&MovieLensOptions { max_posts: 30, min_rating: Some(9) });
        assert_eq!(it.next().unwrap().unwrap_err().kind(), "invalid_input");
    }

    /// Asserts a schema error located at `file`, `column`, whose message contains `needle`.
    fn assert_schema(e: Error, file: &str, column: &str, needle: &str) {
        assert_eq!(e.kind(), "schema", "{e}");
        let loc = e.location().unwrap();
        assert_eq!(loc.file.as_deref(), Some(Path::new(file)), "{e}");
        assert_eq!(loc.field.as_deref(), Some(column), "{e}");
        assert!(e.to_string().contains(needle), "`{e}` lacks `{needle}`");
    }

    #[test]
    fn bad_values_are_located_schema_errors() {
        let f = files();
        let build = |u, m, r| MovieLens::build(u, m, r, &f).unwrap_err();
        let mut u = users();
        u.push(user(2, 40, "M", "writer"));
        assert_schema(
            build(u, movies(), ratings()),
            "users.parquet",
            "user_id",
            "user_id 2 appears twice (rows 2 and 5)",
        );
        let mut u = users();
        u[1].age = 0;
        assert_schema(build(u, movies(), ratings()), "users.parquet", "age", "row 2 (user 2): age 0");
        let mut u = users();
        u[2].gender = "X".into();
        assert_schema(build(u, movies(), ratings()), "users.parquet", "gender", "`X` is neither");
        let mut u = users();
        u[0].user_id = -3;
        assert_schema(build(u, movies(), ratings()), "users.parquet", "user_id", "row 1: user_id -3");
        let mut m = movies();
        m[5].movie_id = 1;
        assert_schema(build(users(), m, ratings()), "items.parquet", "movie_id", "movie_id 1 appears twice");
        let mut r = ratings();
        r.push(rating(9, 1, 3, 0));
        assert_schema(build(users(), movies(), r), "data.parquet", "user_id", "row 13: user_id 9 is not in");
        let mut r = ratings();
        r[3].movie_id = 99;
        assert_schema(build(users(), movies(), r), "data.parquet", "movie_id", "row 4: movie_id 99 is not in");
        let mut r = ratings();
        r[0].rating = 6;
        assert_schema(build(users(), movies(), r), "data.parquet", "rating", "row 1: rating 6 is outside 1-5");
        let mut r = ratings();
        r.push(rating(1, 2, 3, 999));
        assert_schema(
            build(users(), movies(), r),
            "data.parquet",
            "movie_id",
            "user 1 rates movie 2 twice (rows 4 and 13)",
        );
    }

    // --- parquet ---------------------------------------------------------------------

    enum Col {
        Int(Vec<Option<i64>>),
        Str(Vec<Option<String>>),
        /// A BYTE_ARRAY column of arbitrary bytes.
        Raw(Vec<Vec<u8>>),
    }

    fn ints(v: impl IntoIterator<Item = i64>) -> Col {
        Col::Int(v.into_iter().map(Some).collect())
    }

    fn strs<S: Into<String>>(v: impl IntoIterator<Item = S>) -> Col {
        Col::Str(v.into_iter().map(|s| Some(s.into())).collect())
    }

    /// Writes a flat parquet file of optional columns, in `groups` row groups.
    fn write_table(path: &Path, columns: &[(&str, Col)], groups: usize) {
        let fields = columns
            .iter()
            .map(|(name, col)| {
                let builder = match col {
                    Col::Int(_) => Type::primitive_type_builder(name, PhysicalType::INT64),
                    Col::Str(_) | Col::Raw(_) => Type::primitive_type_builder(name, PhysicalType::BYTE_ARRAY)
                        .with_logical_type(Some(LogicalType::String)),
                };
                Arc::new(builder.with_repetition(Repetition::OPTIONAL).build().unwrap())
            })
            .collect();
        let schema = Arc::new(Type::group_type_builder("schema").with_fields(fields).build().unwrap());
        let rows = match &columns[0].1 {
            Col::Int(v) => v.len(),
            Col::Str(v) => v.len(),
            Col::Raw(v) => v.len(),
        };
        let props = Arc::new(WriterProperties::builder().build());
        let mut writer = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
        let per_group = rows.div_ceil(groups.max(1)).max(1);
        let mut start = 0;
        loop {
            let end = (start + per_group).min(rows);
            let mut group = writer.next_row_group().unwrap();
            let mut cols = columns.iter();
            while let Some(mut w) = group.next_column().unwrap() {
                let defs = |present: Vec<bool>| present.into_iter().map(i16::from).collect::<Vec<i16>>();
                match &cols.next().unwrap().1 {
                    Col::Int(v) => {
                        let v = &v[start..end];
                        let values: Vec<i64> = v.iter().flatten().copied().collect();
                        let d = defs(v.iter().map(Option::is_some).collect());
                        w.typed::<Int64Type>().write_batch(&values, Some(&d), None).unwrap();
                    }
                    Col::Str(v) => {
                        let v = &v[start..end];
                        let values: Vec<parquet::data_type::ByteArray> =
                            v.iter().flatten().map(|s| s.as_bytes().to_vec().into()).collect();
                        let d = defs(v.iter().map(Option::is_some).collect());
                        w.typed::<ByteArrayType>().write_batch(&values, Some(&d), None).unwrap();
                    }
                    Col::Raw(v) => {
                        let values: Vec<parquet::data_type::ByteArray> =
                            v[start..end].iter().map(|b| b.clone().into()).collect();
                        let d = vec![1; values.len()];
                        w.typed::<ByteArrayType>().write_batch(&values, Some(&d), None).unwrap();
                    }
                }
                w.close().unwrap();
            }
            group.close().unwrap();
            start = end;
            if start >= rows {
                break;
            }
        }
        writer.close().unwrap();
    }

    /// A fresh temp folder for one test.
    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("zipp-movielens-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn users_table() -> Vec<(&'static str, Col)> {
        let u = users();
        vec![
            ("user_id", ints(u.iter().map(|u| u.user_id))),
            ("age", ints(u.iter().map(|u| u.age))),
            ("gender", strs(u.iter().map(|u| u.gender.clone()))),
            ("occupation", strs(u.iter().map(|u| u.occupation.clone()))),
            ("zip_code", strs(["00000", "00001", "00002", "00003"])),
        ]
    }

    fn movies_table() -> Vec<(&'static str, Col)> {
        let m = movies();
        let mut t = vec![
            ("movie_id", ints(m.iter().map(|m| m.movie_id))),
            ("movie_title", strs(m.iter().map(|m| m.title.clone()))),
            ("release_date", Col::Str(m.iter().map(|m| m.release_date.clone()).collect())),
            ("IMDb_URL", strs(m.iter().map(|_| "http://example.invalid/"))),
        ];
        for (g, name) in GENRES.iter().enumerate() {
            t.push((name, ints(m.iter().map(|m| i64::from(m.genres >> g & 1)))));
        }
        t
    }

    fn ratings_table() -> Vec<(&'static str, Col)> {
        let r = ratings();
        vec![
            ("user_id", ints(r.iter().map(|r| r.user_id))),
            ("movie_id", ints(r.iter().map(|r| r.movie_id))),
            ("rating", ints(r.iter().map(|r| r.rating))),
            ("timestamp", ints(r.iter().map(|r| r.timestamp))),
        ]
    }

    fn write_all(dir: &Path, users: &[(&str, Col)], movies: &[(&str, Col)], ratings: &[(&str, Col)]) {
        write_table(&dir.join(USERS_FILE), users, 1);
        write_table(&dir.join(MOVIES_FILE), movies, 2);
        write_table(&dir.join(RATINGS_FILE), ratings, 3);
    }

    #[test]
    fn loads_invented_parquet_tables() {
        let dir = temp_dir("ok");
        write_all(&dir, &users_table(), &movies_table(), &ratings_table());
        let loaded = MovieLens::load(&dir).unwrap();
        let o = MovieLensOptions::default();
        let expected: Vec<Persona> = bench().personas(&o).collect::<Result<_>>().unwrap();
        assert_eq!(loaded.personas(&o).collect::<Result<Vec<_>>>().unwrap(), expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Loads the invented tables with `edit` applied to the named file's columns.
    fn load_edited(name: &str, file: &str, edit: impl FnOnce(&mut Vec<(&'static str, Col)>)) -> Error {
        let dir = temp_dir(name);
        let (mut u, mut m, mut r) = (users_table(), movies_table(), ratings_table());
        edit(match file {
            USERS_FILE => &mut u,
            MOVIES_FILE => &mut m,
            _ => &mut r,
        });
        write_all(&dir, &u, &m, &r);
        let e = MovieLens::load(&dir).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        e
    }

    fn assert_schema_in(e: Error, file: &str, column: &str, needle: &str) {
        let path = e.location().and_then(|l| l.file.clone()).expect("a file");
        assert_eq!(path.file_name().unwrap(), file, "{e}");
        let name = path.to_string_lossy().into_owned();
        assert_schema(e, &name, column, needle);
    }

    #[test]
    fn missing_columns_are_named() {
        let e = load_edited("nocol", USERS_FILE, |t| t.retain(|(n, _)| *n != "age"));
        assert_schema_in(e, USERS_FILE, "age", "missing column `age` (the file has: user_id, gender");
        let e = load_edited("nogenre", MOVIES_FILE, |t| t.retain(|(n, _)| *n != "Film-Noir"));
        assert_schema_in(e, MOVIES_FILE, "Film-Noir", "missing column `Film-Noir`");
    }

    #[test]
    fn mistyped_columns_are_named() {
        let e = load_edited("type", RATINGS_FILE, |t| t[2].1 = strs((0..12).map(|i| i.to_string())));
        assert_schema_in(e, RATINGS_FILE, "rating", "column `rating` holds BYTE_ARRAY, expected integers");
        let e = load_edited("type2", USERS_FILE, |t| t[2].1 = ints(0..4));
        assert_schema_in(e, USERS_FILE, "gender", "expected strings");
    }

    #[test]
    fn nulls_and_bad_flags_are_located() {
        let e = load_edited("null", USERS_FILE, |t| {
            if let Col::Int(v) = &mut t[0].1 {
                v[1] = None;
            }
        });
        assert_schema_in(e, USERS_FILE, "user_id", "row 2: value is missing (null)");
        // A null in the second of three row groups still names the absolute row.
        let e = load_edited("null2", RATINGS_FILE, |t| {
            if let Col::Int(v) = &mut t[3].1 {
                v[6] = None;
            }
        });
        assert_schema_in(e, RATINGS_FILE, "timestamp", "row 7: value is missing");
        let e = load_edited("flag", MOVIES_FILE, |t| {
            let col = t.iter_mut().find(|(n, _)| *n == "Western").unwrap();
            col.1 = ints((0..12).map(|i| if i == 10 { 2 } else { 0 }));
        });
        assert_schema_in(e, MOVIES_FILE, "Western", "row 11: genre flag 2 is neither 0 nor 1");
        let e = load_edited("utf8", MOVIES_FILE, |t| {
            let mut titles: Vec<Vec<u8>> = (0..12).map(|i| format!("Film {i} (1990)").into_bytes()).collect();
            titles[3] = b"Caf\xe9 (1990)".to_vec();
            t[1].1 = Col::Raw(titles);
        });
        assert_schema_in(e, MOVIES_FILE, "movie_title", "row 4: value is not UTF-8 text");
    }

    #[test]
    fn missing_folder_and_files_carry_the_provisioning_hint() {
        let missing = std::env::temp_dir().join(format!("zipp-movielens-absent-{}", std::process::id()));
        let e = MovieLens::load(&missing).unwrap_err();
        match &e {
            Error::ModelNotFound { path, hint, .. } => {
                assert_eq!(path, &missing);
                assert_eq!(hint, PROVISION_HINT);
            }
            other => panic!("expected model_not_found, got {other}"),
        }
        assert!(e.to_string().contains("scripts/provision-models.sh"), "{e}");

        let dir = temp_dir("empty");
        let e = MovieLens::load(&dir).unwrap_err();
        assert!(matches!(&e, Error::ModelNotFound { path, .. } if path == &dir.join(USERS_FILE)), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn garbage_and_empty_files_are_unusable_not_panics() {
        let dir = temp_dir("garbage");
        write_all(&dir, &users_table(), &movies_table(), &ratings_table());
        for (bytes, what) in [(&b""[..], "empty"), (&b"PAR1 this is not parquet PAR1"[..], "garbage")] {
            std::fs::write(dir.join(MOVIES_FILE), bytes).unwrap();
            let e = MovieLens::load(&dir).unwrap_err();
            match &e {
                Error::ModelInvalid { path, hint, .. } => {
                    assert_eq!(path, &dir.join(MOVIES_FILE), "{what}");
                    assert!(hint.contains("provision-models.sh"), "{what}: {e}");
                }
                other => panic!("{what}: expected model_invalid, got {other}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The reader of one table, as `load` runs it.
    fn reader(file: &str) -> fn(&Path) -> Result<()> {
        match file {
            USERS_FILE => |p| guarded(p, read_users).map(drop),
            MOVIES_FILE => |p| guarded(p, read_movies).map(drop),
            _ => |p| guarded(p, read_ratings).map(drop),
        }
    }

    /// Prefix cuts of `file` fail `load` with an error naming it; byte flips (`flips` spread
    /// over the file) give its reader an error naming it or, for a flip that keeps the file
    /// valid, rows. Never a panic: some flips in uncompressed pages do panic inside parquet
    /// 60 (`bit_util::read_num_bytes` slicing past a short buffer), which the guard turns
    /// into `ModelInvalid` (the panic message still reaches stderr through the panic hook).
    fn damage(dir: &Path, file: &str, cuts: impl Iterator<Item = usize>, flips: usize) {
        let path = dir.join(file);
        let original = std::fs::read(&path).unwrap();
        let check = |e: Error| match &e {
            Error::ModelInvalid { path: p, .. } => assert_eq!(p, &path, "{e}"),
            Error::Schema { location, .. } => assert_eq!(location.file.as_ref(), Some(&path), "{e}"),
            other => panic!("{file}: unexpected error kind: {other}"),
        };
        for cut in cuts {
            std::fs::write(&path, &original[..cut]).unwrap();
            check(MovieLens::load(dir).unwrap_err());
        }
        let read = reader(file);
        for at in (0..original.len()).step_by(original.len().div_ceil(flips)) {
            let mut bytes = original.clone();
            bytes[at] ^= 0x5a;
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = read(&path) {
                check(e);
            }
        }
        std::fs::write(&path, original).unwrap();
    }

    #[test]
    fn damaged_invented_files_are_errors_not_panics() {
        let dir = temp_dir("damaged");
        write_all(&dir, &users_table(), &movies_table(), &ratings_table());
        for file in [USERS_FILE, MOVIES_FILE, RATINGS_FILE] {
            let n = std::fs::metadata(dir.join(file)).unwrap().len() as usize;
            damage(&dir, file, (0..n).step_by(n / 100).chain(n - 16..n), 400);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // --- the provisioned files -----------------------------------------------------------

    /// The real bench. Fails (never skips) when the files are missing: the test suite
    /// provisions first, and the error carries the provisioning hint.
    fn real() -> MovieLens {
        MovieLens::load_default().unwrap_or_else(|e| panic!("the MovieLens 100K bench did not load: {e}"))
    }

    #[test]
    fn real_files_load_and_every_persona_validates() {
        let b = real();
        assert_eq!((b.users(), b.movies(), b.ratings()), (943, 1682, 100_000));
        let o = MovieLensOptions::default();
        let mut posts = 0;
        let mut with_dislikes = 0;
        for (i, p) in b.personas(&o).enumerate() {
            let p = p.unwrap();
            p.validate().unwrap();
            assert_eq!(p.id, format!("ml100k-{}", i + 1), "users are in id order");
            assert!(p.demographics.keys().all(|k| ["age_band", "gender", "profession"].contains(&k.as_str())));
            assert!(["female", "male"].contains(&p.demographics["gender"].as_str()));
            assert!(!p.summary.is_empty() && !p.memory.is_empty() && p.memory.len() <= o.max_posts);
            let stars: Vec<char> =
                p.memory.iter().map(|m| m.caption.split(", rated ").last().unwrap().chars().next().unwrap()).collect();
            assert!(stars.windows(2).all(|w| w[0] >= w[1]), "{}: posts not by rating", p.id);
            assert!(p.memory.iter().all(|m| m.id.as_deref().is_some_and(|id| id.starts_with('m'))));
            assert!(p.memory.iter().all(|m| m.caption.contains(" out of 5")));
            assert!(p.interests.len() <= MAX_INTERESTS);
            assert!(p.preferences.liked.len() <= MAX_PREFERENCES && p.preferences.disliked.len() <= MAX_PREFERENCES);
            assert!(p.preferences.liked.iter().all(|g| !p.preferences.disliked.contains(g)));
            posts += p.memory.len();
            with_dislikes += usize::from(!p.preferences.disliked.is_empty());
        }
        // Every user rated at least 20 movies: 30 posts, or all their ratings.
        assert!(posts >= 943 * 20, "{posts}");
        assert!(with_dislikes > 0);
        let fives = MovieLensOptions { max_posts: 30, min_rating: Some(5) };
        let p = b.persona(0, &fives).unwrap();
        assert!(!p.memory.is_empty() && p.memory.iter().all(|m| m.caption.contains(", rated 5 out of 5")));
        assert_eq!(b.persona(0, &o).unwrap(), b.persona(0, &o).unwrap());
    }

    #[test]
    fn real_files_damaged_are_errors_not_panics() {
        let src = default_models_dir().join(DATA_DIR);
        real();
        let dir = temp_dir("real-damaged");
        for file in [USERS_FILE, MOVIES_FILE, RATINGS_FILE] {
            std::fs::copy(src.join(file), dir.join(file)).unwrap();
        }
        // A spread of cuts and flips, the last bytes (footer, magic) each.
        for file in [USERS_FILE, MOVIES_FILE, RATINGS_FILE] {
            let n = std::fs::metadata(dir.join(file)).unwrap().len() as usize;
            damage(&dir, file, (0..n).step_by(n / 8).chain(n - 8..n), 64);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// MovieLens users as a [`PersonaSource`](super::PersonaSource): one persona per user, in
/// user-id order, built with the given options.
#[derive(Debug, Clone)]
pub struct MovieLensPersonas {
    data: Arc<MovieLens>,
    options: MovieLensOptions,
}

impl MovieLensPersonas {
    pub fn data(&self) -> &Arc<MovieLens> {
        &self.data
    }

    pub fn options(&self) -> &MovieLensOptions {
        &self.options
    }
}

impl super::PersonaSource for MovieLensPersonas {
    fn describe(&self) -> String {
        format!("movielens-100k(users={}, max_posts={})", self.data.users(), self.options.max_posts)
    }

    fn len_hint(&self) -> Option<usize> {
        Some(self.data.users())
    }

    fn personas(&self) -> Result<super::Personas<'_>> {
        Ok(Box::new(self.data.personas(&self.options)))
    }

    fn stream(self: Arc<Self>) -> Result<super::Personas<'static>> {
        Ok(Box::new((0..self.data.users()).map(move |i| self.data.persona(i, &self.options))))
    }
}
