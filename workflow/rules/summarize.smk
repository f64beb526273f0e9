# Your own videos: every file in `videos_dir` -> results/videos/<name>/summary.mp4 (+ csv, png, json).
# Captions come from <name>.csv / <name>.json beside the video (or summarize.captions_dir).


rule summarize_videos:
    input:
        expand("results/videos/{video}/summary.mp4", video=list(USER_VIDEOS)),
