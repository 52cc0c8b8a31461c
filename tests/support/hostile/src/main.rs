fn main() {
    println!("hostile {}", env!("HOSTILE_TRIED"));
}
