def test_homepage_lists_demo_trainers(client, demo):
    html = client.get("/").get_data(as_text=True)
    assert html.count('class="card trainer-card"') == 5
