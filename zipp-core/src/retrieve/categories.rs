//! Visual categories of a persona's memory and the descriptions used to rank them.
//!
//! VPRAG orders categories by `q · unit(embed(description))` (SPEC §3 step 3). A bare name
//! such as `pose` embeds poorly, so known categories get a short description; any other
//! category name is described by itself (underscores read as spaces).

/// Known categories and their descriptions.
pub const KNOWN: &[(&str, &str)] = &[
    ("foreground", "foreground: the main subject, people and objects in front"),
    ("background", "background: the scenery and setting behind the subject"),
    ("lighting", "lighting: light sources, direction, shadows and glow"),
    ("pose", "pose: body posture, gesture and stance of the subject"),
    ("materials", "materials: textures, fabrics and surfaces"),
    ("palette", "colour palette: the dominant colours and tones"),
    ("mood", "mood: the emotional atmosphere and feeling"),
    ("environment", "environment: the place, weather and surroundings"),
    ("appearance", "appearance: clothing, hair, accessories and style"),
    ("time_of_day", "time of day: morning, noon, golden hour, night"),
    ("composition", "composition: framing, camera angle and perspective"),
    ("style", "style: the artistic medium and visual style"),
];

/// The description embedded for `category`.
pub fn describe(category: &str) -> String {
    KNOWN
        .iter()
        .find(|(name, _)| *name == category)
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| category.replace('_', " "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_categories_describe_themselves() {
        assert!(super::describe("lighting").starts_with("lighting:"));
        assert_eq!(super::describe("camera_gear"), "camera gear");
    }
}
